import { closeSync, fstatSync, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tryLock, unlock } from './lockFile.ts';
import { readJson, writeJsonAtomic } from './jsonFile.ts';
import type { WorkerPaths } from './workerPaths.ts';

/**
 * The log index gives every line of a worker's two log files a place in one sequence, so `seq` is the same for
 * every reader on every thread and a reader can resume with `sinceSeq`. The wrapper writes stdout and stderr to
 * separate files and nothing records how they interleave; the order between the two streams is the order in which
 * lines were indexed (a watcher indexes every poll interval), which is exact within a stream and approximate across.
 *
 * `logs.idx` holds fixed 32-byte records (stream, start offset, end offset, time indexed), record n is seq n.
 * `logs.pos.json` caches how far each file is indexed. One thread at a time indexes, under a lock file.
 */

const RECORD = 32;
/** Longer lines are split into chunks of this size. */
const MAX_CHUNK = 64 * 1024;
/** Bytes read from one file per pass. */
const PASS_BYTES = 4 * 1024 * 1024;
/** A lock held this long belongs to a thread that died while indexing. */
const STALE_LOCK_MS = 5_000;

/** Which log file a record points into. */
export type LogStream = 'stdout' | 'stderr';

/** One indexed line (or piece of a long line). */
export interface LogRecord {
  seq: number;
  stream: LogStream;
  start: number;
  end: number;
  /** Epoch ms when it was indexed. */
  ts: number;
}

interface Position {
  records: number;
  stdout: number;
  stderr: number;
}

function fileSize(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}

/** Sizes of the two log files: a watcher indexes again only once they changed (or the worker ended). */
export interface LogSizes {
  stdout: number;
  stderr: number;
}

/** Current {@link LogSizes} (0 for a file that does not exist). */
export function logSizes(paths: WorkerPaths): LogSizes {
  return { stdout: fileSize(paths.stdout), stderr: fileSize(paths.stderr) };
}

function decode(buf: Buffer, at: number, seq: number): LogRecord {
  return {
    seq,
    stream: buf.readDoubleLE(at) === 1 ? 'stderr' : 'stdout',
    start: buf.readDoubleLE(at + 8),
    end: buf.readDoubleLE(at + 16),
    ts: buf.readDoubleLE(at + 24),
  };
}

/** Brings the cached position in line with the index file (it may lag if a thread died after appending). */
function reconcile(fd: number, pos: Position): Position {
  const size = fstatSync(fd).size;
  const records = Math.floor(size / RECORD);
  if (size % RECORD !== 0) ftruncateSync(fd, records * RECORD);
  if (records === pos.records) return pos;
  const from = records > pos.records ? pos.records : 0;
  const next: Position = from === 0 ? { records: 0, stdout: 0, stderr: 0 } : { ...pos };
  const buf = Buffer.alloc((records - from) * RECORD);
  readSync(fd, buf, 0, buf.length, from * RECORD);
  for (let i = 0; i < records - from; i++) {
    const r = decode(buf, i * RECORD, from + i);
    next[r.stream] = Math.max(next[r.stream], r.end);
  }
  next.records = records;
  return next;
}

/** Splits new bytes of one file into line records; a trailing partial line waits unless `flush`. */
function scan(file: string, from: number, flush: boolean): Array<[number, number]> {
  const size = fileSize(file);
  if (size <= from) return [];
  const length = Math.min(size - from, PASS_BYTES);
  const buf = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, length, from);
  } finally {
    closeSync(fd);
  }
  const out: Array<[number, number]> = [];
  let lineStart = 0;
  const push = (start: number, end: number): void => {
    for (let s = start; s < end; s += MAX_CHUNK) out.push([from + s, from + Math.min(end, s + MAX_CHUNK)]);
  };
  for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, lineStart)) {
    push(lineStart, nl + 1);
    lineStart = nl + 1;
  }
  const atEof = from + length === size;
  if (lineStart < length) {
    if (flush && atEof) push(lineStart, length);
    // A long line still being written is cut only at whole chunks: its tail waits for the newline (or the end), so
    // where the chunks fall does not depend on when the indexer happened to run.
    else push(lineStart, lineStart + Math.floor((length - lineStart) / MAX_CHUNK) * MAX_CHUNK);
  }
  return out;
}

/**
 * Indexes output written since the last pass. With `flush` (the worker has ended) a last line without a newline is
 * indexed too. Returns false when another thread holds the lock (its pass covers the same output).
 */
export function indexLogs(paths: WorkerPaths, flush: boolean): boolean {
  if (tryLock(paths.logLock, STALE_LOCK_MS) === false) return false;
  let fd: number | undefined;
  try {
    fd = openSync(paths.logIndex, 'a+');
    let pos = reconcile(fd, readJson<Position>(paths.logPos) ?? { records: 0, stdout: 0, stderr: 0 });
    // Bounded, so a worker that writes faster than we index cannot hold the lock forever.
    for (let pass = 0; pass < 256; pass++) {
      const ts = Date.now();
      const records: Array<[LogStream, number, number]> = [];
      for (const stream of ['stdout', 'stderr'] as const) {
        for (const [start, end] of scan(stream === 'stdout' ? paths.stdout : paths.stderr, pos[stream], flush)) records.push([stream, start, end]);
      }
      if (records.length === 0) break;
      const buf = Buffer.alloc(records.length * RECORD);
      records.forEach(([stream, start, end], i) => {
        buf.writeDoubleLE(stream === 'stderr' ? 1 : 0, i * RECORD);
        buf.writeDoubleLE(start, i * RECORD + 8);
        buf.writeDoubleLE(end, i * RECORD + 16);
        buf.writeDoubleLE(ts, i * RECORD + 24);
      });
      writeSync(fd, buf);
      const next: Position = { ...pos, records: pos.records + records.length };
      for (const [stream, , end] of records) next[stream] = Math.max(next[stream], end);
      pos = next;
      writeJsonAtomic(paths.logPos, pos);
    }
    return true;
  } finally {
    if (fd !== undefined) closeSync(fd);
    unlock(paths.logLock);
  }
}

/** Indexes, waiting a little for another thread's pass to finish so the result covers everything written so far. */
export async function indexLogsNow(paths: WorkerPaths, flush: boolean): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (indexLogs(paths, flush)) return;
    await sleep(10);
  }
}

/** Number of indexed records, i.e. the next seq. */
export function recordCount(paths: WorkerPaths): number {
  return Math.floor(fileSize(paths.logIndex) / RECORD);
}

/** Records `[from, to)`. */
export function readRecords(paths: WorkerPaths, from: number, to: number): LogRecord[] {
  if (to <= from) return [];
  let fd: number;
  try {
    fd = openSync(paths.logIndex, 'r');
  } catch {
    return [];
  }
  try {
    const buf = Buffer.alloc((to - from) * RECORD);
    const n = Math.floor(readSync(fd, buf, 0, buf.length, from * RECORD) / RECORD);
    const out: LogRecord[] = [];
    for (let i = 0; i < n; i++) out.push(decode(buf, i * RECORD, from + i));
    return out;
  } finally {
    closeSync(fd);
  }
}

/** The seq from which the last `lines` records of the wanted streams start. */
export function tailStart(paths: WorkerPaths, lines: number, wanted: (stream: LogStream) => boolean, total = recordCount(paths)): number {
  if (lines <= 0) return total;
  let found = 0;
  for (let end = total; end > 0; end -= 1_024) {
    const records = readRecords(paths, Math.max(0, end - 1_024), end);
    for (let i = records.length - 1; i >= 0; i--) {
      const r = records[i]!;
      if (wanted(r.stream) && ++found === lines) return r.seq;
    }
  }
  return 0;
}
