import path from 'node:path';
import type { OwnerLabels } from '@worker-manager/plugin-sdk';

const safe = (s: string): string => s.replace(/[^a-zA-Z0-9_.-]/g, '-');

/** Names of the engine objects and host folders of one instance. */
export class Names {
  readonly #base: string;
  readonly #filesRoot: string;

  constructor(owner: OwnerLabels, secretsDir: string) {
    this.#base = `wm-${safe(owner['worker-manager/host'])}-${safe(owner['worker-manager/instance'])}`;
    this.#filesRoot = path.join(secretsDir, this.#base);
  }

  /** Container name: unique per engine, so the engine itself arbitrates concurrent creates of one worker id. */
  container(workerId: string): string {
    return `${this.#base}-${workerId}`;
  }

  /** Per-worker internal network (Strict isolation). */
  strictNetwork(workerId: string): string {
    return `${this.#base}-${workerId}`;
  }

  /** The instance's bridge network (Default isolation), unless the config names one. */
  instanceNetwork(): string {
    return this.#base;
  }

  /** Host folder holding this instance's per-worker file folders. */
  filesRoot(): string {
    return this.#filesRoot;
  }

  /** Host folder of one worker incarnation's secret and config map files. */
  filesDir(workerId: string, epoch: string): string {
    return path.join(this.#filesRoot, `${workerId}.${epoch}`);
  }
}
