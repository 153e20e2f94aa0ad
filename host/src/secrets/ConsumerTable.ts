import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { SecretRef, writeFileAtomic } from '@worker-manager/plugin-sdk';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { hostError } from '../errors.ts';

/** One worker's use of one secret: what rotation needs to find and update it. Names and versions only. */
export const SecretConsumer = Type.Object(
  {
    workerId: Type.String({ minLength: 1 }),
    /** Provider instance running the worker. */
    instance: Type.String({ minLength: 1 }),
    tenant: Type.String({ minLength: 1 }),
    /** The ref as the worker asked for it, with `credentials` filled in when it named none. */
    ref: SecretRef,
  },
  { additionalProperties: false },
);
/** A secret consumer. */
export type SecretConsumer = Static<typeof SecretConsumer>;

const TableFile = Type.Object({ format: Type.Literal(1), consumers: Type.Array(SecretConsumer) }, { additionalProperties: false });
const checkTable = Compile(TableFile);

/**
 * The consumer table, persisted as `<stateDir>/secrets/consumers.json` so rotations after a host restart still reach
 * the workers created before it. Writes are atomic and serialised; the file holds refs (names), never values.
 */
export class ConsumerTable {
  readonly #file: string;
  #byWorker = new Map<string, SecretConsumer[]>();
  #writing: Promise<void> = Promise.resolve();

  constructor(stateDir: string) {
    this.#file = path.join(stateDir, 'secrets', 'consumers.json');
  }

  get file(): string {
    return this.#file;
  }

  /** Loads the table; a missing file is an empty table, an unreadable one refuses start rather than forget consumers. */
  async load(): Promise<void> {
    await mkdir(path.dirname(this.#file), { recursive: true, mode: 0o700 });
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw hostError('HOST_ERR_SECRETS_STATE_CORRUPT', `the secret consumer table ${this.#file} is not valid JSON`, { details: { file: this.#file }, cause });
    }
    if (!checkTable.Check(parsed)) {
      const first = [...checkTable.Errors(parsed)][0];
      throw hostError('HOST_ERR_SECRETS_STATE_CORRUPT', `the secret consumer table ${this.#file} does not match its schema at ${first?.instancePath ?? ''}: ${first?.message ?? ''}`, {
        details: { file: this.#file },
      });
    }
    const byWorker = new Map<string, SecretConsumer[]>();
    for (const c of parsed.consumers) byWorker.set(c.workerId, [...(byWorker.get(c.workerId) ?? []), c]);
    this.#byWorker = byWorker;
  }

  /** Replaces the consumers of one worker (none: forgets it) and persists the table. */
  async set(workerId: string, consumers: SecretConsumer[]): Promise<void> {
    if (consumers.length === 0 && !this.#byWorker.has(workerId)) return;
    if (consumers.length === 0) this.#byWorker.delete(workerId);
    else this.#byWorker.set(workerId, consumers);
    await this.#persist();
  }

  ofWorker(workerId: string): SecretConsumer[] {
    return [...(this.#byWorker.get(workerId) ?? [])];
  }

  all(): SecretConsumer[] {
    return [...this.#byWorker.values()].flat();
  }

  #persist(): Promise<void> {
    // Each write serialises the table as it is when the write starts, after the previous write finished, so the last
    // write always holds every change and a failed write does not block the next one.
    const next = this.#writing.catch(() => undefined).then(() => writeFileAtomic(this.#file, JSON.stringify({ format: 1, consumers: this.all() })));
    this.#writing = next;
    return next;
  }
}
