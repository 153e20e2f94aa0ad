/**
 * Splits a byte stream into lines of at most `maxBytes`, without ever holding more than that of one line: a longer line
 * is dropped as it arrives (counted in {@link takeDropped}) and reading resumes after its newline. A sandbox that writes
 * one endless line costs the host `maxBytes` of memory, not the line.
 */
export class LineSplitter {
  readonly #maxBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  /** Inside a line that is being dropped. */
  #skipping = false;
  #dropped = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** The complete lines in `chunk` (with what came before it), without their newline. */
  push(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      if (this.#skipping) {
        this.#dropped += nl - start;
        this.#skipping = false;
      } else if (this.#size + (nl - start) > this.#maxBytes) {
        this.#dropLine(nl - start);
        this.#skipping = false;
      } else if (this.#size === 0) {
        out.push(chunk.toString('utf8', start, nl));
      } else {
        this.#parts.push(chunk.subarray(start, nl));
        out.push(Buffer.concat(this.#parts).toString('utf8'));
        this.#parts = [];
        this.#size = 0;
      }
      start = nl + 1;
    }
    if (start < chunk.length && this.#skipping) {
      this.#dropped += chunk.length - start;
    } else if (start < chunk.length) {
      const rest = chunk.length - start;
      if (this.#size + rest > this.#maxBytes) {
        this.#dropLine(rest);
        this.#skipping = true;
      } else {
        // Copied: the stream may reuse the chunk's memory.
        this.#parts.push(Buffer.from(chunk.subarray(start)));
        this.#size += rest;
      }
    }
    return out;
  }

  /** Bytes of the lines dropped since the last call. */
  takeDropped(): number {
    const dropped = this.#dropped;
    this.#dropped = 0;
    return dropped;
  }

  #dropLine(more: number): void {
    this.#dropped += this.#size + more;
    this.#parts = [];
    this.#size = 0;
  }
}
