import { PassThrough } from 'node:stream';
import type { CoreV1Api} from '@kubernetes/client-node';
import { Log, type KubeConfig } from '@kubernetes/client-node';
import type { LogChunk, LogOptions } from '@worker-manager/plugin-sdk';
import { mapKubeError } from './kubeErrors.ts';
import { CONTAINER } from './names.ts';

interface Line {
  data: string;
  timestamp: string;
}

/** A log line as the kubelet returns it with `timestamps=true`: RFC 3339 time, a space, the text. */
function toLine(raw: string): Line {
  const space = raw.indexOf(' ');
  const parsed = space > 0 ? Date.parse(raw.slice(0, space)) : Number.NaN;
  if (Number.isNaN(parsed)) return { data: raw, timestamp: new Date().toISOString() };
  return { data: raw.slice(space + 1), timestamp: new Date(parsed).toISOString() };
}

function splitLines(text: string): Line[] {
  const parts = text.split('\n');
  const last = parts.pop() ?? '';
  const lines = parts.map((p) => toLine(`${p}\n`));
  if (last !== '') lines.push(toLine(last));
  return lines;
}

export interface LogTarget {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  pod: string;
  workerId: string;
}

/**
 * The pod's output as {@link LogChunk}s, one per line, all on `stdout`: the kubelet merges the container's streams
 * into one log, so `stdout: false` selects nothing. `seq` is the line's index in the whole log, so `sinceSeq` and
 * `tailLines` are applied here after numbering. With `follow`, one request (client-node's `Log`) streams from the start
 * until the container ends, the pod is deleted, or the reader cancels.
 */
export async function readLogs(t: LogTarget, options: LogOptions, signal: AbortSignal): Promise<AsyncIterable<LogChunk>> {
  if (options.stdout === false) return (async function* (): AsyncGenerator<LogChunk> {})();
  let start = options.sinceSeq ?? 0;
  let lines: Line[] = [];
  if (options.follow !== true || options.tailLines !== undefined) {
    let text: string;
    try {
      text = await t.core.readNamespacedPodLog({ name: t.pod, namespace: t.namespace, container: CONTAINER, timestamps: true });
    } catch (error) {
      // A container that has not started yet has no log: an empty one, as for a fresh container elsewhere.
      if ((error as { code?: number }).code === 400) text = '';
      else throw mapKubeError(error, 'getLogs', { workerId: t.workerId });
    }
    lines = splitLines(text);
    if (options.tailLines !== undefined) start = Math.max(start, Math.max(0, lines.length - options.tailLines));
  }
  if (options.follow !== true) {
    const all = lines;
    return (async function* (): AsyncGenerator<LogChunk> {
      for (let seq = start; seq < all.length; seq++) yield { stream: 'stdout', data: all[seq]!.data, timestamp: all[seq]!.timestamp, seq };
    })();
  }
  // Not awaited: the apiserver answers a followed log only once the kubelet has sent its first bytes, which for a quiet
  // worker is when it next prints; the caller must have its stream before that.
  const sink = new PassThrough();
  const controller = new AbortController();
  new Log(t.kubeConfig)
    .log(
      t.namespace,
      t.pod,
      CONTAINER,
      sink,
      (error: unknown) => {
        if (error !== null && error !== undefined && !signal.aborted && !controller.signal.aborted) sink.destroy(mapKubeError(error, 'getLogs', { workerId: t.workerId }));
        else sink.end();
      },
      { follow: true, timestamps: true },
    )
    .then(
      (request) => {
        if (controller.signal.aborted) request.abort();
        else controller.signal.addEventListener('abort', () => request.abort(), { once: true });
      },
      (error: unknown) => sink.destroy(mapKubeError(error, 'getLogs', { workerId: t.workerId })),
    );
  return follow(sink, controller, start, signal);
}

async function* follow(sink: PassThrough, controller: AbortController, start: number, signal: AbortSignal): AsyncGenerator<LogChunk> {
  const onAbort = (): void => {
    controller.abort();
    sink.destroy();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  let partial = '';
  let seq = 0;
  try {
    for await (const chunk of sink) {
      const parts = (partial + (chunk as Buffer).toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        const n = seq++;
        if (n >= start) yield { stream: 'stdout', ...toLine(`${p}\n`), seq: n };
      }
      if (signal.aborted) return;
    }
    if (partial !== '' && seq >= start) yield { stream: 'stdout', ...toLine(partial), seq };
  } catch (error) {
    if (signal.aborted || (error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
    controller.abort();
    sink.destroy();
  }
}
