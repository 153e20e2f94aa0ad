import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { LogChunk, LogOptions } from '@worker-manager/plugin-sdk';
import { FrameDecoder } from './demux.ts';
import { mapDockerError } from './dockerErrors.ts';

/** A line of container output as the engine returns it with `timestamps: true`. */
interface Line {
  stream: 'stdout' | 'stderr';
  data: string;
  timestamp: string;
}

/**
 * Splits decoded frames into lines. With `timestamps`, the engine starts every line with an RFC 3339 timestamp and a
 * space; a frame can hold a part of a line, so text is buffered per stream until its newline.
 */
class LineSplitter {
  readonly #partial = { stdout: '', stderr: '' };

  push(stream: 'stdout' | 'stderr', text: string): Line[] {
    const buf = this.#partial[stream] + text;
    const parts = buf.split('\n');
    this.#partial[stream] = parts.pop() ?? '';
    return parts.map((raw) => toLine(stream, `${raw}\n`));
  }

  flush(): Line[] {
    const out: Line[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.#partial[stream] !== '') out.push(toLine(stream, this.#partial[stream]));
      this.#partial[stream] = '';
    }
    return out;
  }
}

function toLine(stream: 'stdout' | 'stderr', raw: string): Line {
  const space = raw.indexOf(' ');
  const ts = space > 0 ? raw.slice(0, space) : '';
  const parsed = Date.parse(ts);
  if (Number.isNaN(parsed)) return { stream, data: raw, timestamp: new Date().toISOString() };
  return { stream, data: raw.slice(space + 1), timestamp: new Date(parsed).toISOString() };
}

/** Every line the container has logged so far (both streams, engine order). */
async function readAllLines(container: Docker.Container): Promise<Line[]> {
  const buf = (await container.logs({ follow: false, stdout: true, stderr: true, timestamps: true })) as unknown as Buffer;
  const decoder = new FrameDecoder();
  const splitter = new LineSplitter();
  const lines: Line[] = [];
  for (const f of decoder.push(Buffer.isBuffer(buf) ? buf : Buffer.from(buf))) lines.push(...splitter.push(f.stream, f.payload.toString('utf8')));
  lines.push(...splitter.flush());
  return lines;
}

/**
 * The container's output as {@link LogChunk}s, one per line. `seq` is the line's index in the container's whole log
 * (both streams), so it is stable across calls and threads; stream selection and `tailLines` filter after numbering.
 * With `follow`, one engine request streams from the start (numbering every line) until the container stops, the
 * signal aborts, or the reader stops. The engine request is made before this returns, so a worker removed right
 * after the call still ends the stream cleanly.
 */
export async function readLogs(container: Docker.Container, options: LogOptions, signal: AbortSignal, workerId: string): Promise<AsyncIterable<LogChunk>> {
  const wanted = (s: 'stdout' | 'stderr'): boolean => (s === 'stdout' ? options.stdout !== false : options.stderr !== false);
  let start = options.sinceSeq ?? 0;
  let lines: Line[] | undefined;
  if (options.follow !== true || options.tailLines !== undefined) {
    try {
      lines = await readAllLines(container);
    } catch (error) {
      throw mapDockerError(error, 'getLogs', { workerId });
    }
    if (options.tailLines !== undefined) {
      const selected = lines.flatMap((l, seq) => (wanted(l.stream) ? [seq] : []));
      const n = options.tailLines;
      const from = n === 0 ? lines.length : n >= selected.length ? 0 : selected[selected.length - n]!;
      start = Math.max(start, from);
    }
  }
  if (options.follow !== true) {
    const all = lines ?? [];
    return (async function* (): AsyncGenerator<LogChunk> {
      for (let seq = start; seq < all.length; seq++) {
        const l = all[seq]!;
        if (wanted(l.stream)) yield { stream: l.stream, data: l.data, timestamp: l.timestamp, seq };
      }
    })();
  }
  let stream: Readable;
  try {
    stream = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true })) as unknown as Readable;
  } catch (error) {
    throw mapDockerError(error, 'getLogs', { workerId });
  }
  return follow(stream, start, wanted, signal, workerId);
}

async function* follow(stream: Readable, start: number, wanted: (s: 'stdout' | 'stderr') => boolean, signal: AbortSignal, workerId: string): AsyncGenerator<LogChunk> {
  const onAbort = (): void => void stream.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  const decoder = new FrameDecoder();
  const splitter = new LineSplitter();
  let seq = 0;
  try {
    for await (const chunk of stream) {
      for (const f of decoder.push(chunk as Buffer)) {
        for (const l of splitter.push(f.stream, f.payload.toString('utf8'))) {
          const n = seq++;
          if (n >= start && wanted(l.stream)) yield { stream: l.stream, data: l.data, timestamp: l.timestamp, seq: n };
        }
      }
      if (signal.aborted) return;
    }
    for (const l of splitter.flush()) {
      const n = seq++;
      if (n >= start && wanted(l.stream)) yield { stream: l.stream, data: l.data, timestamp: l.timestamp, seq: n };
    }
  } catch (error) {
    if (signal.aborted || (error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    throw mapDockerError(error, 'getLogs', { workerId });
  } finally {
    signal.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}
