import { closeSync, openSync, readSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogChunk, LogOptions } from '@worker-manager/plugin-sdk';
import { indexLogs, indexLogsNow, readRecords, recordCount, tailStart, type LogRecord, type LogStream } from './logIndex.ts';
import type { WorkerPaths } from './workerPaths.ts';

/** What a log reader needs besides the folder. */
export interface ReadLogsContext {
  signal: AbortSignal;
  /** True once the worker has ended (no more output will come). */
  isFinished(): boolean;
  pollMs: number;
}

const BATCH = 512;

function chunkReader(paths: WorkerPaths): { read(r: LogRecord): string; close(): void } {
  const fds = new Map<LogStream, number>();
  return {
    read(r) {
      let fd = fds.get(r.stream);
      if (fd === undefined) {
        fd = openSync(r.stream === 'stdout' ? paths.stdout : paths.stderr, 'r');
        fds.set(r.stream, fd);
      }
      const buf = Buffer.alloc(r.end - r.start);
      const n = readSync(fd, buf, 0, buf.length, r.start);
      return buf.subarray(0, n).toString('utf8');
    },
    close() {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
    },
  };
}

/**
 * The worker's output as {@link LogChunk}s, one per line, `seq` from the log index. `sinceSeq` is inclusive;
 * `tailLines` starts that many lines (of the selected streams) before the end. With `follow` it keeps indexing and
 * yielding until the worker has ended and everything is read, or the signal aborts.
 */
export async function* readLogs(paths: WorkerPaths, options: LogOptions, ctx: ReadLogsContext): AsyncGenerator<LogChunk> {
  const wanted = (s: LogStream): boolean => (s === 'stdout' ? options.stdout !== false : options.stderr !== false);
  let finished = ctx.isFinished();
  await indexLogsNow(paths, finished);
  let end = recordCount(paths);
  let cursor = options.sinceSeq ?? 0;
  if (options.tailLines !== undefined) cursor = Math.max(cursor, tailStart(paths, options.tailLines, wanted, end));
  const reader = chunkReader(paths);
  try {
    for (;;) {
      while (cursor < end) {
        for (const r of readRecords(paths, cursor, Math.min(end, cursor + BATCH))) {
          cursor = r.seq + 1;
          if (!wanted(r.stream)) continue;
          yield { stream: r.stream, data: reader.read(r), timestamp: new Date(r.ts).toISOString(), seq: r.seq };
          if (ctx.signal.aborted) return;
        }
      }
      if (options.follow !== true || ctx.signal.aborted || finished) return;
      finished = ctx.isFinished();
      if (finished) await indexLogsNow(paths, true);
      else indexLogs(paths, false);
      end = recordCount(paths);
      if (cursor >= end && !finished) {
        try {
          await sleep(ctx.pollMs, undefined, { signal: ctx.signal });
        } catch {
          return;
        }
      }
    }
  } finally {
    reader.close();
  }
}
