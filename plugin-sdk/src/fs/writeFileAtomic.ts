import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Permission bits of the new file; 0600 when absent, since these files usually hold state or secrets. */
  mode?: number;
}

function tempNameFor(file: string): string {
  // Hidden and in the same folder: the rename stays on one file system (so it is atomic), and globbing readers skip it.
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Replaces `file` with `content` so that a reader opening it at any moment, or a restart after a crash, finds the old
 * content or the new one whole, never a mix: the content goes to a temporary file in the same folder, is fsynced and
 * renamed over `file`, then the folder is fsynced so the rename itself survives a power loss. A reader that opened the
 * old file keeps reading the old content to its end. Plugins use it for state files and hot-swapped secret files.
 */
export async function writeFileAtomic(file: string, content: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const tmp = tempNameFor(file);
  try {
    const handle = await open(tmp, 'wx', options.mode ?? 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** The synchronous form of {@link writeFileAtomic}, for code that must not yield between deciding and writing. */
export function writeFileAtomicSync(file: string, content: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const tmp = tempNameFor(file);
  try {
    const fd = openSync(tmp, 'wx', options.mode ?? 0o600);
    try {
      const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      let at = 0;
      while (at < data.length) at += writeSync(fd, data, at, data.length - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  const dirFd = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
