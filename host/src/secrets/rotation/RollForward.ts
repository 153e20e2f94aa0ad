import { lookupErrorCode, WorkerManagerError, type CredentialProviderContract, type Proxied } from '@worker-manager/plugin-sdk';
import type { Logger } from '../../observability/logger.ts';
import type { RotationJournal } from './RotationJournal.ts';
import type { JournalEntry, RotationStep } from './RotationRecord.ts';
import { callOptions, currentOf } from './rotationSupport.ts';

/** The capability of a store whose new versions are live the moment they are created. */
export const IMMEDIATE = 'secret.rotate.immediate';

/** What rolling forward works with: the engine's store proxies, journal and guarded steps. */
export interface RollForwardDeps {
  creds(credentials: string): Proxied<CredentialProviderContract>;
  journal: RotationJournal;
  /** Journals the record at `step`, then audits it (the engine's own step). */
  step(entry: JournalEntry, step: RotationStep): Promise<void>;
  /** The engine's one promotion, behind the failed-version guard. */
  promote(credentials: string, name: string, version: string, correlationId: string | undefined): Promise<void>;
  logger: Logger;
}

/**
 * The version a store made live since `entry` started: its current version when that is no longer the one current
 * before (`entry.previousVersion`). On a store with `secret.rotate.immediate`, createPendingVersion makes the version
 * current at once, so after a crash or a lost answer the store itself says whether the create happened.
 */
export async function liveVersion(creds: Proxied<CredentialProviderContract>, entry: JournalEntry): Promise<string | undefined> {
  const cur = currentOf(await creds.listVersions({ name: entry.name }, callOptions(entry.correlationId)));
  return cur === undefined || cur.version === entry.previousVersion ? undefined : cur.version;
}

/**
 * Rollback on a store with `secret.rotate.immediate` (Keycloak): the version current before cannot be made current
 * again (Keycloak keeps the old client secret only as the rotated one, valid until its expiry), so the rollback rotates
 * forward instead: a new version, tested, becomes the one consumers move to, and the version rolled back from is
 * revoked (at once after a failed rotation, after the grace period for a manual rollback).
 *
 * Step `roll-forward` of a rollback record is idempotent, deciding from what the store holds now: `newVersion` current
 * means nothing is left to do (nothing went live, or an earlier attempt finished the step); the version rolled back
 * from (`previousVersion`) or any failed version current means a new one is needed; any other current version is one
 * an earlier attempt created but did not finish testing (a crash, a lost answer), which is adopted and tested rather
 * than made again. A new version that fails its test is marked failed like any failed rotation's version, and the
 * step fails (the rollback retries with backoff, making yet another).
 */
export class RollForward {
  readonly #d: RollForwardDeps;

  constructor(deps: RollForwardDeps) {
    this.#d = deps;
  }

  /** Runs step `roll-forward` of `rb` and journals it at `redistribute` (with `undoPromoted` once a version moved). */
  async run(rb: JournalEntry): Promise<void> {
    const creds = this.#d.creds(rb.credentials);
    const opts = callOptions(rb.correlationId);
    const { name } = rb;
    const cur = currentOf(await creds.listVersions({ name }, opts));
    if (cur === undefined) {
      throw new WorkerManagerError('WM_ERR_ROTATION_FAILED', `secret '${name}' has no current version to roll forward from`, { details: { name, credentials: rb.credentials, step: 'roll-forward' } });
    }
    if (cur.version !== rb.newVersion && rb.previousVersion === undefined) {
      const failed = this.#d.journal.entries().find((e) => e.id === rb.rollbackOf);
      // The failed rotation made no version that it knows of. When its create may have had its answer lost (a timeout,
      // a crash), the version the store holds current now is that create's: it is the one undone. When the store
      // refused the create, nothing of the rotation went live: a current version that changed meanwhile changed on its
      // own (a Keycloak token is replaced as it expires) and is left alone.
      if (lookupErrorCode(failed?.error?.code ?? '')?.transient !== true) {
        await this.#d.step(rb, 'redistribute');
        return;
      }
      rb.previousVersion = cur.version;
      this.#markFailed(rb, cur.version, rb.rollbackOf ?? rb.id, failed?.step ?? 'create', failed?.error?.code);
      await this.#d.journal.save();
    }
    if (cur.version !== rb.newVersion) {
      const adoptable = cur.version !== rb.previousVersion && this.#d.journal.failedVersion(rb.credentials, name, cur.version) === undefined;
      let version = cur.version;
      if (adoptable) {
        this.#d.logger.warn({ rotationId: rb.id, name, credentials: rb.credentials, version }, 'rolling forward: the store already holds a new current version (an earlier attempt made it, its answer lost); testing it rather than making another');
      } else {
        version = (await creds.createPendingVersion({ name }, opts)).version;
        this.#d.logger.info({ rotationId: rb.id, name, credentials: rb.credentials, from: cur.version, version }, 'rolling forward: the store made a new version live, replacing the one rolled back from');
      }
      const test = await creds.testVersion({ name, version }, opts);
      if (!test.ok) {
        this.#markFailed(rb, version, rb.id, 'roll-forward');
        await this.#d.journal.save();
        throw new WorkerManagerError('WM_ERR_ROTATION_FAILED', `secret '${name}' version ${version}, made to roll forward, failed its test${test.reason === undefined ? '' : `: ${test.reason}`}`, {
          details: { name, credentials: rb.credentials, version, step: 'roll-forward' },
        });
      }
      await this.#d.promote(rb.credentials, name, version, rb.correlationId);
      rb.newVersion = version;
      rb.undoPromoted = true;
    }
    await this.#d.step(rb, 'redistribute');
  }

  #markFailed(rb: JournalEntry, version: string, rotationId: string, step: string, code = 'WM_ERR_ROTATION_FAILED'): void {
    this.#d.journal.markFailed({ credentials: rb.credentials, name: rb.name, version, rotationId, step, code, failedAt: new Date().toISOString() });
  }
}
