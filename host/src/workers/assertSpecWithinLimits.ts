import { Compile } from 'typebox/compile';
import { MAX_SPEC_BYTES, RuntimeSpec, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../errors.ts';

const specCheck = Compile(RuntimeSpec);

/**
 * Refuses the spec the host is about to record and hand a provider, as the host built it (the request's `labels`
 * merged over the spec's, the owner labels added), before anything is recorded: a field outside the contract is
 * `WM_ERR_VALIDATION` at its path (two label maps within their limits can together exceed it), and a spec whose JSON is
 * larger than MAX_SPEC_BYTES is `HOST_ERR_SPEC_TOO_LARGE` (413). The contract bounds each field but not their sum: 256
 * arguments of 32,000 characters each pass it, and are more than the system can pass to a process or is worth recording.
 */
export function assertSpecWithinLimits(spec: RuntimeSpec): void {
  if (!specCheck.Check(spec)) {
    const issue = [...specCheck.Errors(spec)][0];
    const path = `/spec${issue?.instancePath ?? ''}`;
    throw new WorkerManagerError('WM_ERR_VALIDATION', `${path}: ${issue?.message ?? 'invalid'}`, { details: { path } });
  }
  const bytes = Buffer.byteLength(JSON.stringify(spec));
  if (bytes > MAX_SPEC_BYTES) {
    throw hostError('HOST_ERR_SPEC_TOO_LARGE', `/spec: the spec is ${bytes} bytes of JSON, more than the ${MAX_SPEC_BYTES} (MAX_SPEC_BYTES) a worker spec may have`, {
      details: { path: '/spec', bytes, limitBytes: MAX_SPEC_BYTES },
    });
  }
}
