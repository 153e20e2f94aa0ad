import type { ErrorCodeSpec } from './categories.ts';

/**
 * Stable error codes of the plugin contracts.
 * Codes never change meaning once published; new ones are added at the end of a group.
 */
export const SDK_ERROR_CODES = {
  WM_ERR_VALIDATION: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The request does not match the contract schema or violates a rule of the operation.',
    howToSolve: 'Fix the input named in the error details; do not retry unchanged.',
  },
  WM_ERR_NOT_FOUND: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The worker (or other resource) named in the request does not exist.',
    howToSolve: 'Check the id; list workers to see what exists.',
  },
  WM_ERR_ALREADY_EXISTS: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'A resource with this id exists and was created from a different request.',
    howToSolve: 'Use a new id, or repeat the original request to get the existing resource.',
  },
  WM_ERR_AUTHENTICATION: {
    category: 'Authorization', severity: 'Medium', transient: false,
    description: 'The caller could not be authenticated (missing, expired or invalid credentials).',
    howToSolve: 'Refresh the token or credentials and retry.',
  },
  WM_ERR_AUTHORIZATION: {
    category: 'Authorization', severity: 'Medium', transient: false,
    description: 'The caller is authenticated but a policy denies the operation.',
    howToSolve: 'Check the policies that apply to this principal, action and resource.',
  },
  WM_ERR_RESOURCE_EXHAUSTED: {
    category: 'ResourceLimits', severity: 'High', transient: true,
    description: 'The provider has no capacity left for the requested resources.',
    howToSolve: 'Retry with backoff, reschedule elsewhere, or request fewer resources.',
  },
  WM_ERR_TIMEOUT: {
    category: 'TransientInfrastructure', severity: 'Medium', transient: true,
    description: 'The operation did not finish within its deadline.',
    howToSolve: 'Retry with exponential backoff; raise the deadline if the operation is legitimately slow.',
  },
  WM_ERR_NETWORK: {
    category: 'TransientInfrastructure', severity: 'Medium', transient: true,
    description: 'The infrastructure behind the provider could not be reached.',
    howToSolve: 'Retry with jitter; check connectivity to the infrastructure.',
  },
  WM_ERR_CONFIGURATION: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The provider or plugin is configured in a way that cannot work.',
    howToSolve: 'Fix the configuration named in the details and restart the instance.',
  },
  WM_ERR_COMPATIBILITY: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The operation or a feature of the request needs a capability this provider does not offer.',
    howToSolve: 'Route the worker to a provider that declares the capability, or drop the feature from the request.',
  },
  WM_ERR_INTERNAL: {
    category: 'Internal', severity: 'Critical', transient: false,
    description: 'An unexpected failure inside a plugin or the host.',
    howToSolve: 'Report it with the correlation id; the logs hold the cause.',
  },
  WM_ERR_PROVIDER_SPECIFIC: {
    category: 'Internal', severity: 'Medium', transient: false,
    description: 'The provider reported a failure of its own; details say whether it is transient.',
    howToSolve: 'Read the provider message; retry only when the error says it is transient.',
  },
  WM_ERR_CONFLICT: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The worker is in a state that does not allow this operation (for example exec on a paused worker).',
    howToSolve: 'Read the worker state and retry once it allows the operation.',
  },
  WM_ERR_SECRET_NOT_FOUND: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'No secret with this name exists in the credential provider.',
    howToSolve: 'Check the secret name and the credential instance.',
  },
  WM_ERR_SECRET_VERSION_NOT_FOUND: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The secret exists but not in the requested version or stage.',
    howToSolve: 'List the versions of the secret and ask for one that exists.',
  },
  WM_ERR_SECRET_EXPIRED: {
    category: 'Authorization', severity: 'Medium', transient: false,
    description: 'The secret version or its lease has expired.',
    howToSolve: 'Read the current version, or renew the lease.',
  },
  WM_ERR_PERMISSION_DENIED: {
    category: 'Authorization', severity: 'Medium', transient: false,
    description: 'The credential provider refused access to the secret.',
    howToSolve: 'Grant the caller access to the secret in the credential provider.',
  },
  WM_ERR_SECRET_INVALID_FORMAT: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The secret value does not have the format the provider accepts.',
    howToSolve: 'Send a value of the documented format (string or key/value map).',
  },
  WM_ERR_SECRET_SIZE_LIMIT: {
    category: 'ResourceLimits', severity: 'Low', transient: false,
    description: 'The secret value is larger than the provider allows.',
    howToSolve: 'Store a smaller value, or raise the limit in the instance config.',
  },
  WM_ERR_ROTATION_FAILED: {
    category: 'PermanentInfrastructure', severity: 'High', transient: false,
    description: 'A rotation step failed; the previous version stays active.',
    howToSolve: 'Read the rotation audit record, fix the cause, then retry or roll back.',
  },
} as const satisfies Record<string, ErrorCodeSpec>;

/** A stable error code defined by the SDK. */
export type SdkErrorCode = keyof typeof SDK_ERROR_CODES;
