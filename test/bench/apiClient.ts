/**
 * A benchmark's API client in a thread of its own (apiClientThread.mjs), as callers of a real host are in processes of
 * their own: the host's thread then does the host's work only, and a measured latency is what a remote caller sees
 * rather than the host's work plus the client's own (building requests, parsing answers) on the same event loop.
 */
import { Worker } from 'node:worker_threads';

/** What a client thread reports after a run. */
export interface ClientRun {
  statuses: Array<[number, number]>;
  latenciesMs: number[];
  itemCounts: number[];
}

/** A client in its own thread (apiClientThread.mjs) sending `requests`, `inFlight` at a time. */
export class ClientThread {
  readonly #thread: Worker;

  constructor(apiUrl: string, authorization: string, requests: unknown[], inFlight: number) {
    this.#thread = new Worker(new URL('./apiClientThread.mjs', import.meta.url), { workerData: { apiUrl, authorization, requests, inFlight } });
  }

  /** Sends `total` requests, or (null) until {@link stop}. */
  run(total: number | null): Promise<ClientRun> {
    return new Promise((resolve, reject) => {
      const fail = (error: Error): void => reject(error);
      this.#thread.once('error', fail);
      this.#thread.once('message', (run: ClientRun) => {
        this.#thread.off('error', fail);
        resolve(run);
      });
      this.#thread.postMessage({ total });
    });
  }

  stop(): void {
    this.#thread.postMessage({ stop: true });
  }

  async close(): Promise<void> {
    await this.#thread.terminate();
  }
}
