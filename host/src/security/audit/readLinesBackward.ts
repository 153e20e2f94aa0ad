import { open } from 'node:fs/promises';

const CHUNK = 64 * 1024;

/**
 * The newline-terminated lines of a file that end at or before `end` (a line boundary, e.g. `LastLine.tornOffset`),
 * from the last to the first. Reads backwards in chunks, so finding a record near the end costs a few reads.
 */
export async function* readLinesBackward(file: string, end: number): AsyncGenerator<string> {
  const handle = await open(file, 'r');
  try {
    let pos = end;
    // Bytes read but not yet split into lines: the start of the earliest line seen so far, up to its newline.
    let carry = Buffer.alloc(0);
    // The byte at end - 1 is the newline of the last line: drop it so that splitting yields whole lines.
    let first = true;
    while (pos > 0) {
      const start = Math.max(0, pos - CHUNK);
      const chunk = Buffer.alloc(pos - start);
      await handle.read(chunk, 0, chunk.length, start);
      pos = start;
      let buffered = Buffer.concat([chunk, carry]);
      if (first) {
        first = false;
        if (buffered.at(-1) === 0x0a) buffered = buffered.subarray(0, buffered.length - 1);
      }
      let cut = buffered.lastIndexOf(0x0a);
      let stop = buffered.length;
      while (cut !== -1) {
        yield buffered.subarray(cut + 1, stop).toString('utf8');
        stop = cut;
        cut = stop > 0 ? buffered.lastIndexOf(0x0a, stop - 1) : -1;
      }
      carry = buffered.subarray(0, stop);
    }
    if (!first && carry.length > 0) yield carry.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** The first line of a file (without its newline), or undefined when the file holds no whole line. */
export async function readFirstLine(file: string): Promise<string | undefined> {
  const handle = await open(file, 'r');
  try {
    let buffered = Buffer.alloc(0);
    for (let pos = 0; ; ) {
      const chunk = Buffer.alloc(CHUNK);
      const { bytesRead } = await handle.read(chunk, 0, CHUNK, pos);
      if (bytesRead === 0) return undefined;
      pos += bytesRead;
      const at = chunk.subarray(0, bytesRead).indexOf(0x0a);
      if (at !== -1) return Buffer.concat([buffered, chunk.subarray(0, at)]).toString('utf8');
      buffered = Buffer.concat([buffered, chunk.subarray(0, bytesRead)]);
    }
  } finally {
    await handle.close();
  }
}
