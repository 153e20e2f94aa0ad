/** One frame of Docker's multiplexed stream (non-TTY attach, logs and exec output). */
export interface Frame {
  stream: 'stdout' | 'stderr';
  payload: Buffer;
}

/**
 * Incremental parser of the engine's 8-byte frame header: [stream type, 0, 0, 0, size (uint32 BE)] then `size`
 * bytes. Frames may be split across reads, so bytes are kept until a frame is complete. Stream type 0 (stdin) and
 * 1 map to stdout, 2 to stderr (3 is the engine's systemerr, reported as stderr).
 */
export class FrameDecoder {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const out: Frame[] = [];
    while (this.#pending.length >= 8) {
      const size = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + size) break;
      const type = this.#pending[0];
      out.push({ stream: type === 2 || type === 3 ? 'stderr' : 'stdout', payload: this.#pending.subarray(8, 8 + size) });
      this.#pending = this.#pending.subarray(8 + size);
    }
    return out;
  }
}
