import { toWorkerManagerError, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../errors.ts';

/** Fastify's own request errors, by code, as ours. Anything 4xx fastify raises is the caller's; never a 500. */
function fromFastifyError(error: { code?: unknown; statusCode?: unknown; message: string }): WorkerManagerError | undefined {
  const code = typeof error.code === 'string' ? error.code : undefined;
  const status = typeof error.statusCode === 'number' ? error.statusCode : undefined;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) {
    return hostError('HOST_ERR_API_BODY_TOO_LARGE', 'request body is larger than the API accepts', { details: { path: '/body' } });
  }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || status === 415) {
    return hostError('HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json', { details: { path: '/headers/content-type' } });
  }
  if (code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (error instanceof SyntaxError && status === 400)) {
    return new WorkerManagerError('WM_ERR_VALIDATION', `request body is not valid JSON: ${error.message}`, { details: { path: '/body' } });
  }
  if (status !== undefined && status >= 400 && status < 500) {
    // FST_ERR_CTP_* are about the body (empty, bad length); other fastify 4xx are about the request as a whole.
    const path = code?.startsWith('FST_ERR_CTP_') === true ? '/body' : '/';
    return new WorkerManagerError('WM_ERR_VALIDATION', error.message, { details: { path, ...(code === undefined ? {} : { reason: code }) } });
  }
  return undefined;
}

/** Whatever a route threw, as a WorkerManagerError: ours as is, fastify's request errors as 4xx codes, the rest internal. */
export function toApiError(error: unknown): WorkerManagerError {
  if (error instanceof WorkerManagerError) return error;
  if (error instanceof Error) {
    const mapped = fromFastifyError(error as Error & { code?: unknown; statusCode?: unknown });
    if (mapped !== undefined) return mapped;
  }
  return toWorkerManagerError(error);
}
