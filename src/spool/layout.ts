// The spool directory, a contract between the fetcher (writer) and the workers (claimers):
//
//   <spool.dir>/<pipeline>/
//     tmp/         segments being written; never read by workers; left-overs after a crash are deleted at start
//     ready/       durable segments waiting for a worker
//     claimed/     segments a worker holds: <segment>~<worker id>~<lease expiry ms>
//     quarantine/  messages that could not be spooled, and tasks the workers gave up on, with their reason
//
// File names are built from numbers and random hex only (time, partition, offset, counts), never from task
// keys, which may hold '/', '..', NUL bytes or be very long. A segment name carries its item count and size,
// so the spool's depth is known from a directory listing alone.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SpoolError } from '../core/errors.js';

export interface SpoolPaths {
  root: string;
  tmp: string;
  ready: string;
  claimed: string;
  quarantine: string;
}

export function spoolPaths(dir: string, pipeline: string): SpoolPaths {
  const root = join(dir, pipeline);
  return {
    root,
    tmp: join(root, 'tmp'),
    ready: join(root, 'ready'),
    claimed: join(root, 'claimed'),
    quarantine: join(root, 'quarantine'),
  };
}

export async function ensureSpool(p: SpoolPaths): Promise<void> {
  try {
    for (const d of [p.tmp, p.ready, p.claimed, p.quarantine]) await mkdir(d, { recursive: true });
  } catch (err) {
    throw asSpoolError(err, p);
  }
}

const FS_PROBLEMS: Record<string, string> = {
  ENOTDIR: 'a file stands where a folder should be',
  EEXIST: 'a file stands where a folder should be',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  ENOENT: 'a spool folder is missing (removed while sluice ran?)',
  EISDIR: 'a folder stands where a file should be',
};

/** The file system is full (or the user's quota used up): backpressure, not a failure. */
export const isDiskFull = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
};

/** A file-system error on the spool as one line naming spool.dir; anything else is returned as it is. */
export function asSpoolError(err: unknown, p: SpoolPaths): unknown {
  const e = err as NodeJS.ErrnoException | null;
  const what = e?.code === undefined ? undefined : FS_PROBLEMS[e.code];
  if (what === undefined || err instanceof SpoolError) return err;
  return new SpoolError('SPOOL_UNUSABLE', `spool.dir: cannot use ${e?.path ?? p.root}: ${what} (${e?.code})`, {
    hint: 'point spool.dir (or --spool-dir) at a folder sluice may write, or move what is in the way',
    cause: err,
  });
}

export interface SegmentMeta {
  /** Sort key: creation time and a per-process counter; workers take the oldest first. */
  seq: string;
  partition: number;
  firstOffset: string;
  count: number;
  bytes: number;
  id: string;
}

const SEGMENT = /^(\d{19})-p(\d{1,6})-o(\d{1,20})-n(\d{1,9})-b(\d{1,12})-([0-9a-f]{8})\.seg$/;
const CLAIMED = /^(.+\.seg)~([a-z0-9-]{1,64})~(\d{13,16})$/;

export function segmentName(m: SegmentMeta): string {
  return `${m.seq}-p${m.partition}-o${m.firstOffset}-n${m.count}-b${m.bytes}-${m.id}.seg`;
}

export function parseSegmentName(name: string): SegmentMeta | null {
  const m = SEGMENT.exec(name);
  if (m === null) return null;
  return {
    seq: m[1]!,
    partition: Number(m[2]),
    firstOffset: m[3]!,
    count: Number(m[4]),
    bytes: Number(m[5]),
    id: m[6]!,
  };
}

export interface ClaimedName {
  segment: string;
  workerId: string;
  expiresAt: number;
}

export function claimedName(c: ClaimedName): string {
  return `${c.segment}~${c.workerId}~${c.expiresAt}`;
}

export function parseClaimedName(name: string): ClaimedName | null {
  const m = CLAIMED.exec(name);
  if (m === null || parseSegmentName(m[1]!) === null) return null;
  return { segment: m[1]!, workerId: m[2]!, expiresAt: Number(m[3]) };
}

/** A worker id usable in a file name: lowercase letters, digits and '-'. */
export function safeWorkerId(raw: string): string {
  const id = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return id === '' ? 'worker' : id;
}

let counter = 0;

/** Sorts in write order within a process: milliseconds, then a counter. */
export function sequence(): string {
  return `${Date.now().toString().padStart(13, '0')}${(counter++ % 1_000_000).toString().padStart(6, '0')}`;
}

/** Keeps two processes' names apart. */
export function randomId(): string {
  return randomBytes(4).toString('hex');
}
