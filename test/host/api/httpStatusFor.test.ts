import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SDK_ERROR_CODES, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { httpStatusFor } from '../../../host/src/api/httpStatusFor.ts';
import { HOST_ERROR_CODES } from '../../../host/src/errors.ts';

// The whole table, written out: a new code must be given its status here on purpose, or this test fails.
const EXPECTED: Record<string, number> = {
  WM_ERR_VALIDATION: 400,
  WM_ERR_NOT_FOUND: 404,
  WM_ERR_ALREADY_EXISTS: 409,
  WM_ERR_AUTHENTICATION: 401,
  WM_ERR_AUTHORIZATION: 403,
  WM_ERR_RESOURCE_EXHAUSTED: 429,
  WM_ERR_TIMEOUT: 503,
  WM_ERR_NETWORK: 503,
  WM_ERR_CONFIGURATION: 500,
  WM_ERR_COMPATIBILITY: 400,
  WM_ERR_INTERNAL: 500,
  WM_ERR_PROVIDER_SPECIFIC: 500,
  WM_ERR_CONFLICT: 409,
  WM_ERR_SECRET_NOT_FOUND: 404,
  WM_ERR_SECRET_VERSION_NOT_FOUND: 404,
  WM_ERR_SECRET_EXPIRED: 403,
  WM_ERR_PERMISSION_DENIED: 403,
  WM_ERR_SECRET_INVALID_FORMAT: 400,
  WM_ERR_SECRET_SIZE_LIMIT: 413,
  WM_ERR_ROTATION_FAILED: 503,
  HOST_ERR_CONFIG_NOT_FOUND: 500,
  HOST_ERR_CONFIG_PARSE: 500,
  HOST_ERR_CONFIG_INVALID: 500,
  HOST_ERR_CONFIG_ENV_MISSING: 500,
  HOST_ERR_STATE_DIR_LOCKED: 500,
  HOST_ERR_SPEC_TOO_LARGE: 413,
  HOST_ERR_DUPLICATE_PLUGIN: 500,
  HOST_ERR_DUPLICATE_INSTANCE: 500,
  HOST_ERR_UNKNOWN_PLUGIN_REF: 500,
  HOST_ERR_PLUGIN_NOT_FOUND: 500,
  HOST_ERR_PLUGIN_METADATA_INVALID: 500,
  HOST_ERR_PLUGIN_VERSION_MISMATCH: 500,
  HOST_ERR_HOST_API_MISMATCH: 500,
  HOST_ERR_PLUGIN_CONTRACT_OUTDATED: 500,
  HOST_ERR_CAPABILITY_MISSING: 500,
  HOST_ERR_PLUGIN_KIND_MISMATCH: 500,
  HOST_ERR_INSTANCE_CONFIG_INVALID: 500,
  HOST_ERR_PLUGIN_LOAD_FAILED: 500,
  HOST_ERR_PLUGIN_METADATA_DRIFT: 500,
  HOST_ERR_PLUGIN_PACKAGE_UNSAFE: 500,
  HOST_ERR_SANDBOX_UNAVAILABLE: 500,
  HOST_ERR_PLUGIN_SETUP_FAILED: 503,
  HOST_ERR_PLUGIN_CRASHED: 503,
  HOST_ERR_PLUGIN_OUT_OF_MEMORY: 503,
  HOST_ERR_PLUGIN_TIMEOUT: 503,
  HOST_ERR_PLUGIN_START_TIMEOUT: 503,
  HOST_ERR_PLUGIN_FOREIGN_EVENTS: 503,
  HOST_ERR_PLUGIN_FLOOD: 503,
  HOST_ERR_WORKER_TRANSITION_ILLEGAL: 409,
  HOST_ERR_IDEMPOTENCY_CONFLICT: 409,
  HOST_ERR_WORKER_RECORD_EXISTS: 409,
  HOST_ERR_WORKER_REVISION_CONFLICT: 409,
  HOST_ERR_WORKER_RECORD_NOT_FOUND: 404,
  HOST_ERR_LABEL_SELECTOR_INVALID: 400,
  HOST_ERR_WORKER_RECORD_INVALID: 400,
  HOST_ERR_WORKER_LIST_QUERY_INVALID: 400,
  HOST_ERR_WORKER_STORE_CORRUPT: 500,
  HOST_ERR_WORKER_STORE_UNAVAILABLE: 503,
  HOST_ERR_PLUGIN_HUNG: 503,
  HOST_ERR_PLUGIN_QUARANTINED: 503,
  HOST_ERR_PLUGIN_STOPPED: 503,
  HOST_ERR_PLUGIN_PROTOCOL: 500,
  HOST_ERR_INSTANCE_NOT_FOUND: 404,
  HOST_ERR_INSTANCE_UNAVAILABLE: 503,
  HOST_ERR_BOOT_ABORTED: 500,
  HOST_ERR_SHUTDOWN_TIMEOUT: 500,
  // A draining host: come back later (Retry-After says when), or go to another replica.
  HOST_ERR_DRAINING: 503,
  HOST_ERR_SHUTDOWN_WORKERS_LEFT: 503,
  HOST_ERR_BUS_UNAVAILABLE: 503,
  HOST_ERR_API_LISTEN_FAILED: 500,
  HOST_ERR_API_BODY_TOO_LARGE: 413,
  HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE: 415,
  // A host without a RotationEngine cannot serve the secrets routes; retrying does not help (the code says so).
  HOST_ERR_SECRETS_NOT_CONFIGURED: 503,
  HOST_ERR_AUDIT_UNAVAILABLE: 503,
  HOST_ERR_SECRETS_STATE_CORRUPT: 500,
  HOST_ERR_ROTATION_JOURNAL_CORRUPT: 500,
  HOST_ERR_ROTATION_INTERRUPTED: 503,
  HOST_ERR_ROTATION_STOPPED: 503,
  HOST_ERR_ROTATION_VERSION_FAILED: 409,
  HOST_ERR_ROTATION_ROLLBACK_PENDING: 409,
  HOST_ERR_AUTH_PROVIDER_UNAVAILABLE: 503,
  HOST_ERR_AUTH_INSECURE_BIND: 500,
  HOST_ERR_AUTH_CONFIG_INVALID: 500,
  HOST_ERR_AUTHZ_POLICY_INVALID: 500,
  HOST_ERR_AUTHZ_CONFIG_INVALID: 500,
  HOST_ERR_AUDIT_LOG_CORRUPT: 500,
  HOST_ERR_AUDIT_KEY_UNAVAILABLE: 500,
  HOST_ERR_AUDIT_ANCHOR_UNAVAILABLE: 503,
  HOST_ERR_AUDIT_ANCHOR_MISMATCH: 500,
  // Raised by the wm client on the caller's side; never answered by the API, listed so the table stays whole.
  HOST_ERR_CLI_CONFIG_INVALID: 500,
  HOST_ERR_CLI_UNREACHABLE: 503,
  HOST_ERR_CLI_BAD_RESPONSE: 503,
  HOST_ERR_CLI_WAIT_TIMEOUT: 503,
  HOST_ERR_CLI_WORKER_NOT_RUNNING: 503,
};

describe('httpStatusFor', () => {
  const codes = [...Object.keys(SDK_ERROR_CODES), ...Object.keys(HOST_ERROR_CODES)];

  it('gives every code of both catalogs the status of the table', () => {
    for (const code of codes) {
      const expected = EXPECTED[code];
      assert.notEqual(expected, undefined, `${code} has no expected status in this test: decide one`);
      assert.equal(httpStatusFor(new WorkerManagerError(code, 'x')), expected, code);
    }
    assert.deepEqual(Object.keys(EXPECTED).filter((c) => !codes.includes(c)), [], 'the table names codes that no catalog defines');
  });

  it('answers a client error with 4xx and only infrastructure or host faults with 5xx', () => {
    for (const code of codes) {
      const error = new WorkerManagerError(code, 'x');
      const status = httpStatusFor(error);
      if (error.category === 'ClientValidation' || error.category === 'Authorization') assert.ok(status >= 400 && status < 500, code);
      if (error.category === 'TransientInfrastructure' || error.category === 'PermanentInfrastructure') assert.equal(status, 503, code);
    }
  });

  it('falls back to the category for a code it has never heard of (a vendor plugin\'s own)', () => {
    assert.equal(httpStatusFor(new WorkerManagerError('ACME_ERR_QUOTA', 'x', { category: 'ResourceLimits' })), 429);
    assert.equal(httpStatusFor(new WorkerManagerError('ACME_ERR_DENIED', 'x', { category: 'Authorization' })), 403);
    assert.equal(httpStatusFor(new WorkerManagerError('ACME_ERR_WHAT', 'x')), 500);
  });
});
