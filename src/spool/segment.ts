// A segment file: JSON Lines, one spooled task per line, in offset order:
//   {"partition":3,"offset":"1200","task":{"v":1,"pipeline":"demo","key":42,"payload":{...},...}}
// The task is the validated envelope, re-serialised by the fetcher, so a line never holds a raw newline.

import type { TaskEnvelope } from '../core/envelope.js';

export interface SpoolItem {
  partition: number;
  /** Kafka offset as a decimal string (offsets can exceed 2^53). */
  offset: string;
  task: TaskEnvelope;
}

export function encodeItem(i: SpoolItem, taskJson = JSON.stringify(i.task)): string {
  return `{"partition":${i.partition},"offset":"${i.offset}","task":${taskJson}}\n`;
}

export function encodeItems(items: readonly SpoolItem[]): string {
  let out = '';
  for (const i of items) out += encodeItem(i);
  return out;
}

export function decodeItems(text: string): SpoolItem[] {
  const items: SpoolItem[] = [];
  for (const line of text.split('\n')) {
    if (line.length > 0) items.push(JSON.parse(line) as SpoolItem);
  }
  return items;
}
