// Durable file creation: write under a temporary name, fsync the file, rename it into place, fsync the
// directory. After a crash the file is either absent or complete: never torn, never half visible.

import { open, rename, unlink } from 'node:fs/promises';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `tmpPath`, fsyncs it and renames it to `finalPath` (the caller fsyncs the directory). */
export async function writeSynced(tmpPath: string, finalPath: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(tmpPath, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    // A write that failed (a full disk) leaves no partial file to hold the space.
    await fh.close().catch(() => {});
    await unlink(tmpPath).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await rename(tmpPath, finalPath);
  } catch (err) {
    await unlink(tmpPath).catch(() => {});
    throw err;
  }
}
