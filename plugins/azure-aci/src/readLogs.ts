import { isFinalState, type LogChunk, type LogOptions, type WorkerState } from '@worker-manager/plugin-sdk';

/** Where followed logs come from: the worker's state (undefined once its group is gone) and its whole log. */
export interface LogSource {
  state(): Promise<WorkerState | undefined>;
  /** The container's log with `timestamps: true`; undefined once its group is gone. */
  content(): Promise<string | undefined>;
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) /;

/** Lines of a log read with timestamps; the last one may be a partial line (no newline yet). */
function split(content: string): { lines: Array<{ data: string; timestamp: string }>; partial: { data: string; timestamp: string } | undefined } {
  const parts = content.split('\n');
  const tail = parts.pop() ?? '';
  const parse = (raw: string, newline: boolean): { data: string; timestamp: string } => {
    const m = TIMESTAMP.exec(raw);
    const timestamp = m === null ? new Date().toISOString() : new Date(m[1]!).toISOString();
    return { data: `${m === null ? raw : raw.slice(m[0].length)}${newline ? '\n' : ''}`, timestamp };
  };
  return { lines: parts.map((p) => parse(p, true)), partial: tail === '' ? undefined : parse(tail, false) };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A worker's output as LogChunks, one per line. ACI's log API returns stdout and stderr as one text, so every chunk is
 * `stdout` (and `stdout: false` yields nothing). `seq` is the line's index in the container's log, which is read whole
 * each time (up to ACI's 4 MB) so that it stays the same across calls; `tailLines` is applied to that. With `follow`,
 * the log and the state are read every `pollIntervalMs` (ACI has no streaming log API) until the worker ends, its group
 * is deleted, or `signal` aborts.
 */
export async function* readLogs(source: LogSource, first: string, options: LogOptions, pollIntervalMs: number, signal: AbortSignal): AsyncGenerator<LogChunk> {
  if (options.stdout === false) return;
  let next = options.sinceSeq ?? 0;
  const initial = split(first);
  const all = options.follow === true ? initial.lines : [...initial.lines, ...(initial.partial === undefined ? [] : [initial.partial])];
  if (options.tailLines !== undefined) next = Math.max(next, all.length - options.tailLines);
  for (let seq = next; seq < all.length; seq++) yield { stream: 'stdout', ...all[seq]!, seq };
  next = Math.max(next, all.length);
  if (options.follow !== true) return;
  while (!signal.aborted) {
    await sleep(pollIntervalMs, signal);
    if (signal.aborted) return;
    const state = await source.state();
    if (state === undefined) return;
    const content = await source.content();
    if (content === undefined) return;
    const { lines, partial } = split(content);
    const ended = isFinalState(state);
    // A partial line is held back while the worker may still finish it.
    const ready = ended && partial !== undefined ? [...lines, partial] : lines;
    for (let seq = next; seq < ready.length; seq++) yield { stream: 'stdout', ...ready[seq]!, seq };
    next = Math.max(next, ready.length);
    if (ended) return;
  }
}
