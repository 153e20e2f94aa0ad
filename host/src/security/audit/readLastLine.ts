import { open } from 'node:fs/promises';

const CHUNK = 64 * 1024;

/** The end of a JSON-lines file: its last complete line, and any bytes after the last newline (a torn write). */
export interface LastLine {
  /** The last newline-terminated line, without its newline; undefined when there is none. */
  line?: string;
  /** Bytes after the last newline, when the file does not end with one. */
  torn?: Buffer;
  /** Offset where the torn bytes start (the file's size when there are none). */
  tornOffset: number;
}

/** Reads backwards from the end in chunks, so a large log costs a few reads, not a full scan. */
export async function readLastLine(file: string): Promise<LastLine> {
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    let end = size;
    let buffered = Buffer.alloc(0);
    let tornOffset: number | undefined;
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const chunk = Buffer.alloc(end - start);
      await handle.read(chunk, 0, chunk.length, start);
      buffered = Buffer.concat([chunk, buffered]);
      end = start;
      const base = end;
      // The first newline from the end closes the last complete line; the one before it opens it.
      if (tornOffset === undefined) {
        const last = buffered.lastIndexOf(0x0a);
        if (last === -1) continue;
        tornOffset = base + last + 1;
      }
      const closing = tornOffset - base - 1;
      // (lastIndexOf reads a negative offset from the end, so an empty line at the buffer's start is handled apart.)
      const opening = closing > 0 ? buffered.lastIndexOf(0x0a, closing - 1) : -1;
      if (opening !== -1 || end === 0) {
        const out: LastLine = { line: buffered.subarray(opening + 1, closing).toString('utf8'), tornOffset };
        if (tornOffset < size) out.torn = buffered.subarray(tornOffset - base);
        return out;
      }
    }
    // No newline at all: everything is one torn line.
    if (tornOffset === undefined) return size === 0 ? { tornOffset: 0 } : { torn: buffered, tornOffset: 0 };
    return { tornOffset };
  } finally {
    await handle.close();
  }
}
