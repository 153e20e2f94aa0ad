import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../errors.ts';
import type { RotationJournal } from './RotationJournal.ts';
import { isFinished, type JournalEntry } from './RotationRecord.ts';

/** Steps of a rollback that still has to put the secret back; `grace`/`revoke` of a manual rollback come after that. */
const UNDO_STEPS = new Set<string>(['restore', 'roll-forward', 'redistribute', 'revoke-new']);

/**
 * A version a failed rotation created never becomes current again: throws HOST_ERR_ROTATION_VERSION_FAILED when
 * `version` is one. `currentVersion`, when given, is named in the message as the version that stays.
 */
export function assertNotFailed(journal: RotationJournal, credentials: string, name: string, version: string, currentVersion?: string): void {
  const mark = journal.failedVersion(credentials, name, version);
  if (mark === undefined) return;
  const stays = currentVersion === undefined ? '' : `; version ${currentVersion} stays current`;
  throw hostError('HOST_ERR_ROTATION_VERSION_FAILED', `secret '${name}' version ${version} failed rotation ${mark.rotationId} at step '${mark.step}' (${mark.code}): a failed version never becomes current again${stays}`, {
    details: { name, credentials, version, rotationId: mark.rotationId, step: mark.step, code: mark.code, failedAt: mark.failedAt },
  });
}

/** A rollback of the secret that has not put it back yet (steps restore or roll-forward, redistribute, revoke-new), if any. */
export function unfinishedRollback(journal: RotationJournal, credentials: string, name: string): JournalEntry | undefined {
  return journal.entries().find((e) => e.operation === 'rollback' && !isFinished(e) && e.credentials === credentials && e.name === name && UNDO_STEPS.has(e.step ?? ''));
}

/** Why a secret with an unfinished rollback is not rotated: the rollback, its step and its retry state. */
export function rollbackPendingError(rb: JournalEntry): WorkerManagerError {
  const retry = rb.retry;
  const state = retry === undefined ? 'running' : `attempt ${retry.attempts} failed with ${retry.lastError.code}${retry.nextAttemptAt === undefined ? '' : `, next attempt at ${retry.nextAttemptAt}`}`;
  return hostError('HOST_ERR_ROTATION_ROLLBACK_PENDING', `secret '${rb.name}' of '${rb.credentials}' has an unfinished rollback ${rb.id} (step '${rb.step ?? ''}', ${state}): roll back to retry it now, and rotate once it has completed`, {
    details: {
      name: rb.name, credentials: rb.credentials, rollbackId: rb.id, step: rb.step ?? null, attempts: retry?.attempts ?? 0,
      nextAttemptAt: retry?.nextAttemptAt ?? null, lastErrorCode: retry?.lastError.code ?? null,
    },
  });
}
