import { toWorkerManagerError, type CallOptions, type SecretVersion } from '@worker-manager/plugin-sdk';

/** A failure as records keep it, plus its category for the observer. */
export interface Failure {
  code: string;
  message: string;
  category?: string;
}

export function errorOf(error: unknown): Failure {
  const e = toWorkerManagerError(error);
  return { code: e.code, message: e.message, category: e.category };
}

/** Records keep code and message only (the journal schema is closed). */
export const recorded = (f: Failure): { code: string; message: string } => ({ code: f.code, message: f.message });

/** Plugin call options carrying a record's correlation id, when it has one. */
export function callOptions(correlationId: string | undefined): Pick<CallOptions, 'correlationId'> {
  return correlationId === undefined ? {} : { correlationId };
}

/** The version a store stages `current`, if any. */
export const currentOf = (versions: readonly SecretVersion[]): SecretVersion | undefined => versions.find((v) => v.stages.includes('current'));
