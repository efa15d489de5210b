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

/** A validated message on its way into a segment: its offset and its task's JSON, as the bytes to write. */
export interface SpoolLine {
  offset: string;
  task: Uint8Array;
}

const TASK_FIELD = Buffer.from('","task":', 'latin1');

/**
 * Lines [from, to) of one partition as one segment's bytes, the same text encodeItem makes, written straight
 * from each message's bytes: no string of the whole segment is built and encoded again.
 */
export function encodeLines(partition: number, lines: readonly SpoolLine[], from: number, to: number): Buffer {
  const head = Buffer.from(`{"partition":${partition},"offset":"`, 'latin1');
  let size = 0;
  for (let i = from; i < to; i++)
    size += head.length + lines[i]!.offset.length + TASK_FIELD.length + lines[i]!.task.length + 2;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = from; i < to; i++) {
    const l = lines[i]!;
    at += head.copy(out, at);
    at += out.write(l.offset, at, 'latin1');
    at += TASK_FIELD.copy(out, at);
    out.set(l.task, at);
    at += l.task.length;
    out[at++] = 0x7d; // }
    out[at++] = 0x0a; // \n
  }
  return out;
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
