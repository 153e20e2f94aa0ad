import { registerErrorCatalog, WorkerManagerError, type ErrorCodeSpec, type WorkerManagerErrorOptions } from '@worker-manager/plugin-sdk';

/**
 * Error codes the host itself raises. Every error about a plugin carries `plugin`, `instance` and `version` in its
 * details (STYLE 4). Documented in docs/errors.md; a test keeps the two in step.
 */
export const HOST_ERROR_CODES = {
  HOST_ERR_CONFIG_NOT_FOUND: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The config file does not exist or cannot be read.',
    howToSolve: 'Pass an existing file with --config.',
  },
  HOST_ERR_CONFIG_PARSE: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The config file is not valid YAML.',
    howToSolve: 'Fix the syntax at the file:line:col given in the message.',
  },
  HOST_ERR_CONFIG_INVALID: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The config does not match the schema (a missing, unknown or wrongly typed field).',
    howToSolve: 'Fix each field listed with its file:line:col; docs/configuration.md lists every field.',
  },
  HOST_ERR_CONFIG_ENV_MISSING: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The config refers to an environment variable (${NAME}) that is not set and has no default.',
    howToSolve: 'Set the variable, or write ${NAME:-default}.',
  },
  HOST_ERR_STATE_DIR_LOCKED: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'Another host process holds the lock on this state dir (<stateDir>/host.lock), so this one did not start and changed nothing there; two hosts on one state dir would overwrite each other\'s admin token, journals and logs.',
    howToSolve: 'Stop the host whose pid the message names, or give this one its own host.stateDir. A lock whose holder is gone is taken over by itself; only one written on another machine (named in the message) must be deleted by hand once that host is surely stopped.',
  },
  HOST_ERR_SPEC_TOO_LARGE: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The worker spec, as JSON, is larger than the host records (MAX_SPEC_BYTES, 256 KiB), although each field is within its own limit (HTTP 413).',
    howToSolve: 'Move large data out of args and env: mount it from a secret or a volume, or have the worker fetch it.',
  },
  HOST_ERR_DUPLICATE_PLUGIN: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'Two plugin entries share one name; the later one is ignored.',
    howToSolve: 'Give each plugin entry a unique name.',
  },
  HOST_ERR_DUPLICATE_INSTANCE: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'Two instances share one name; the later one is not started.',
    howToSolve: 'Give each instance a unique name.',
  },
  HOST_ERR_UNKNOWN_PLUGIN_REF: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'An instance names a plugin that no plugin entry defines.',
    howToSolve: 'Add the plugin under plugins:, or fix the instance\'s plugin name.',
  },
  HOST_ERR_PLUGIN_NOT_FOUND: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin package cannot be found at the given path or npm name.',
    howToSolve: 'Install the package (npm install NAME) or fix the path, relative to the config file.',
  },
  HOST_ERR_PLUGIN_METADATA_INVALID: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin package.json has no valid workerManager block.',
    howToSolve: 'Regenerate it with npm run plugin:metadata; see docs/plugin-authoring.md.',
  },
  HOST_ERR_PLUGIN_VERSION_MISMATCH: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The installed plugin version is outside the range the config accepts.',
    howToSolve: 'Install a version in range, or widen the version range in the config.',
  },
  HOST_ERR_HOST_API_MISMATCH: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin needs a host API version this host does not offer.',
    howToSolve: 'Use a plugin release built for this host API version, or upgrade the host.',
  },
  HOST_ERR_PLUGIN_CONTRACT_OUTDATED: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The provider plugin was built for worker-provider contract 1 (host API 1.x), whose createWorker waits until the worker runs; this host speaks contract 2, where createWorker returns once the infrastructure has accepted the worker.',
    howToSolve: 'Rebuild the plugin on a @worker-manager/plugin-sdk whose HOST_API_VERSION is 2.0.0: declare hostApi ^2.0.0 and worker.lifecycle 2.0.0, and return from createWorker on acceptance (docs/plugin-authoring.md, "Asynchronous create").',
  },
  HOST_ERR_CAPABILITY_MISSING: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin lacks a capability the host needs (or the instance requires), or declares it at an incompatible version.',
    howToSolve: 'Use a plugin that declares the capability at a compatible version, or drop it from requireCapabilities.',
  },
  HOST_ERR_PLUGIN_KIND_MISMATCH: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin is of a different kind (provider / credentials) than the role the config gives it.',
    howToSolve: 'Reference the plugin from the right place in the config.',
  },
  HOST_ERR_INSTANCE_CONFIG_INVALID: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The instance config does not match the config schema the plugin declares.',
    howToSolve: 'Fix the fields listed; the plugin\'s configSchema says what it accepts.',
  },
  HOST_ERR_PLUGIN_LOAD_FAILED: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin entry module could not be loaded, or its definition differs from its package metadata.',
    howToSolve: 'Read the cause; rebuild the plugin and regenerate its metadata.',
  },
  HOST_ERR_PLUGIN_METADATA_DRIFT: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The plugin\'s package.json (version and workerManager block: id, kind, hostApi, capabilities, configSchema, description) differs from what its definePlugin call declares. The host negotiated from the package.json before running the plugin, so it refuses the plugin rather than serve it on stale facts; the message names each difference.',
    howToSolve: 'Regenerate the block from the code with wm-plugin metadata <pluginDir> (npm run plugin:metadata in this repo) and republish; run wm-plugin metadata --check in the plugin\'s CI.',
  },
  HOST_ERR_PLUGIN_PACKAGE_UNSAFE: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'A restricted plugin package reaches outside itself, so the host refused to copy or bundle it for the sandbox: a symlink that leaves the package (or dangles, or loops), a socket, fifo or device, more files or bytes than a package may hold (MAX_PACKAGE_FILES, MAX_PACKAGE_BYTES), or an import of a file outside the package and its dependencies, of a non-code file, or with import attributes other than { type: \'json\' } (which would inline the file as data).',
    howToSolve: 'Treat the package as hostile until you know why: the message names the link or import, the file it was in and where it pointed. Remove the plugin, or have its author ship the file inside the package and import it as code or JSON.',
  },
  HOST_ERR_PLUGIN_SETUP_FAILED: {
    category: 'PermanentInfrastructure', severity: 'High', transient: false,
    description: 'The plugin setup function threw while the instance started.',
    howToSolve: 'Read the cause; usually the instance config points at something unreachable.',
  },
  HOST_ERR_PLUGIN_CRASHED: {
    category: 'TransientInfrastructure', severity: 'High', transient: true,
    description: 'The plugin thread died (uncaught error or process.exit) while the call was in flight.',
    howToSolve: 'Retry; the instance restarts within its restart budget. Report the plugin if it keeps crashing.',
  },
  HOST_ERR_PLUGIN_OUT_OF_MEMORY: {
    category: 'ResourceLimits', severity: 'High', transient: true,
    description: 'The plugin thread exceeded its heap limit and was stopped.',
    howToSolve: 'Retry; raise limits.heapMb for the plugin if its workload needs it.',
  },
  HOST_ERR_PLUGIN_TIMEOUT: {
    category: 'TransientInfrastructure', severity: 'Medium', transient: true,
    description: 'The plugin did not answer before the call deadline; its thread was replaced.',
    howToSolve: 'Retry; raise limits.callTimeoutMs if the operation is legitimately slow.',
  },
  HOST_ERR_PLUGIN_FOREIGN_EVENTS: {
    category: 'PermanentInfrastructure', severity: 'Critical', transient: false,
    description: 'A provider instance emitted events about workers another instance owns, several in a row, and was quarantined: a plugin must only report its own workers.',
    howToSolve: 'Read the warn lines and audit records naming the instance and the workers; fix or remove the plugin, then restart the host.',
  },
  HOST_ERR_PLUGIN_START_TIMEOUT: {
    category: 'TransientInfrastructure', severity: 'High', transient: true,
    description: 'The plugin\'s threads did not load the plugin and run its setup within limits.startTimeoutMs.',
    howToSolve: 'Raise limits.startTimeoutMs on a slow or busy node, or find what the plugin\'s setup waits for (an unreachable endpoint).',
  },
  HOST_ERR_PLUGIN_HUNG: {
    category: 'TransientInfrastructure', severity: 'High', transient: true,
    description: 'The plugin thread stopped sending heartbeats (a blocked event loop) and was replaced.',
    howToSolve: 'Retry; report the plugin: it blocks its event loop.',
  },
  HOST_ERR_PLUGIN_QUARANTINED: {
    category: 'PermanentInfrastructure', severity: 'Critical', transient: false,
    description: 'The plugin instance used up its restart budget and is quarantined; calls are refused.',
    howToSolve: 'Fix or replace the plugin, then restart the host (or the instance).',
  },
  HOST_ERR_PLUGIN_STOPPED: {
    category: 'TransientInfrastructure', severity: 'Low', transient: true,
    description: 'The plugin instance is stopping or stopped; the call was not run.',
    howToSolve: 'Retry against a running host.',
  },
  HOST_ERR_PLUGIN_PROTOCOL: {
    category: 'Internal', severity: 'Critical', transient: false,
    description: 'A plugin thread sent a message that does not match the protocol or the contract.',
    howToSolve: 'Report the plugin: it returned data outside its contract.',
  },
  HOST_ERR_INSTANCE_NOT_FOUND: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'No instance with this name is configured.',
    howToSolve: 'List instances (startup report or wm providers list) and use one of them.',
  },
  HOST_ERR_INSTANCE_UNAVAILABLE: {
    category: 'PermanentInfrastructure', severity: 'High', transient: false,
    description: 'The instance exists but did not start (see its boot error) or was quarantined.',
    howToSolve: 'Read the startup report for the instance\'s error and fix it.',
  },
  HOST_ERR_BOOT_ABORTED: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'A plugin with onBootFailure: abort failed to start, so the host did not start.',
    howToSolve: 'Fix the failing plugin (its error is the cause) or set onBootFailure: continue.',
  },
  HOST_ERR_SHUTDOWN_TIMEOUT: {
    category: 'Internal', severity: 'Medium', transient: false,
    description: 'In-flight work did not drain before the stop timeout; it was cancelled.',
    howToSolve: 'Raise the stop timeout, or look for calls that never finish.',
  },
  HOST_ERR_DRAINING: {
    category: 'TransientInfrastructure', severity: 'Low', transient: true,
    description: 'The host is shutting down with `host.onShutdown` `drain` or `terminate` and creates no new workers (HTTP 503, with a `Retry-After` header: the seconds left of the drain). Everything else (reads, logs, terminate) is still served until the host stops.',
    howToSolve: 'Retry after the time given, on another replica, or on this host once it has restarted; a repeat of an earlier create with its Idempotency-Key is still answered.',
  },
  HOST_ERR_SHUTDOWN_WORKERS_LEFT: {
    category: 'PermanentInfrastructure', severity: 'High', transient: false,
    description: 'A stop with `host.onShutdown` `drain` or `terminate` could not terminate every worker (a provider that was down or did not answer); the stop went on, and those workers may still run.',
    howToSolve: 'The error names the workers. Start the host again: it adopts them and carries out their termination (their records hold the decision); or terminate them on the infrastructure by hand.',
  },
  HOST_ERR_BUS_UNAVAILABLE: {
    category: 'TransientInfrastructure', severity: 'High', transient: true,
    description: 'The event bus (NATS JetStream) could not be reached at start within bus.jetstream.connectTimeoutMs.',
    howToSolve: 'Start nats-server with JetStream (-js), check bus.jetstream.servers and credentials, or raise connectTimeoutMs.',
  },
  HOST_ERR_API_LISTEN_FAILED: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The REST API could not listen on api.host:api.port (address in use, or not an address of this machine).',
    howToSolve: 'Free the port or change api.port / api.host in the host config.',
  },
  HOST_ERR_API_BODY_TOO_LARGE: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The HTTP request body is larger than api.bodyLimitBytes allows (HTTP 413).',
    howToSolve: 'Send a smaller body, or raise api.bodyLimitBytes in the host config.',
  },
  HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The HTTP request body has a content type the API does not accept (HTTP 415); the API speaks application/json.',
    howToSolve: 'Send the body as JSON with Content-Type: application/json.',
  },
  HOST_ERR_CLI_CONFIG_INVALID: {
    category: 'Configuration', severity: 'Medium', transient: false,
    description: 'The wm CLI cannot tell which API to call or how: its config file (cli.yaml) is unreadable or invalid, no URL was given, or the token file is missing or empty.',
    howToSolve: 'Pass --url/--token-file (or WM_URL/WM_TOKEN_FILE), or fix the file named in the message; docs/operations.md describes cli.yaml.',
  },
  HOST_ERR_CLI_UNREACHABLE: {
    category: 'TransientInfrastructure', severity: 'Medium', transient: true,
    description: 'The wm CLI could not reach the worker-manager API (connection refused, unknown host, timeout, or a stream that kept dropping).',
    howToSolve: 'Check that the host runs with api.enabled and that --url / WM_URL points at it; retry.',
  },
  HOST_ERR_CLI_BAD_RESPONSE: {
    category: 'PermanentInfrastructure', severity: 'Medium', transient: false,
    description: 'The API answered with something that is not a worker-manager answer (not JSON, or not the documented error body), often a proxy in between.',
    howToSolve: 'Check that --url points at the worker-manager API itself; the message quotes the HTTP status.',
  },
  HOST_ERR_CLI_WAIT_TIMEOUT: {
    category: 'TransientInfrastructure', severity: 'Medium', transient: true,
    description: 'wm workers create gave up waiting for the worker to become Running within --wait-timeout; the worker may still start.',
    howToSolve: 'Look at it with wm workers get ID; raise --wait-timeout, or terminate it.',
  },
  HOST_ERR_CLI_WORKER_NOT_RUNNING: {
    category: 'PermanentInfrastructure', severity: 'Medium', transient: false,
    description: 'wm workers create waited for Running, but the worker ended (Failed or Terminated) first.',
    howToSolve: 'Read its logs with wm workers logs ID; the message gives the final state and reason.',
  },
  HOST_ERR_AUTH_PROVIDER_UNAVAILABLE: {
    category: 'TransientInfrastructure', severity: 'High', transient: true,
    description: 'The identity provider (security.authentication.oidc.issuer) could not be reached for its discovery document or signing keys, so no token can be verified (HTTP 503).',
    howToSolve: 'Retry; check that the issuer URL is reachable from the host and serves /.well-known/openid-configuration.',
  },
  HOST_ERR_AUTH_INSECURE_BIND: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The API would listen on a non-loopback address while authentication is the local admin token only; the host refuses to start.',
    howToSolve: 'Keep api.host on 127.0.0.1 / ::1, or configure security.authentication.mode: oidc with an issuer.',
  },
  HOST_ERR_AUTH_CONFIG_INVALID: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The authentication settings cannot work: oidc mode without an oidc block, or an http:// issuer without allowInsecureHttp.',
    howToSolve: 'Fix security.authentication as the message says; docs/configuration.md lists every field.',
  },
  HOST_ERR_AUTHZ_POLICY_INVALID: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The Cedar policy set cannot be used: a file does not parse, a policy id is used twice, the schema is unreadable, or a policy does not validate against the schema; the host refuses to start.',
    howToSolve: 'Fix the policy named in the message (file:line:col when known); check with the Cedar CLI (`cedar validate --schema schema.cedarschema --policies file.cedar`).',
  },
  HOST_ERR_AUTHZ_CONFIG_INVALID: {
    category: 'Configuration', severity: 'High', transient: false,
    description: 'The authorization settings cannot work: adapter avp without an avp block (policyStoreId, region).',
    howToSolve: 'Add security.authorization.avp, or use adapter cedar; docs/configuration.md lists every field.',
  },
  HOST_ERR_AUDIT_LOG_CORRUPT: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The last record of the audit log (<stateDir>/audit/audit.log) cannot be trusted, so the chain cannot be continued: it is not JSON, does not match its hash, carries no MAC (details.reason unsigned: written before records were signed, or stripped) or a MAC the audit key does not produce (forged), or the log does not begin with record 1 (out_of_sequence). The host refuses to start rather than extend a log it cannot vouch for.',
    howToSolve: 'Run wm audit verify to find the first broken record and keep the file as evidence. If the key is right and the log was tampered with (or predates signing), acknowledge a new chain with wm audit reset --reason "..."; it sets the old file aside and is itself audited and anchored.',
  },
  HOST_ERR_AUDIT_UNAVAILABLE: {
    category: 'TransientInfrastructure', severity: 'Critical', transient: true,
    description: 'An audit record could not be written (details.reason write_failed: nothing was appended) or made durable (sync_failed: the file may have lost records, so the log takes no more until the host restarts); either way the call it covered did not run (HTTP 503).',
    howToSolve: 'Check the state dir disk (space, quota, I/O errors in the kernel log). After sync_failed, fix the disk, run wm audit verify, and restart the host.',
  },
  HOST_ERR_AUDIT_KEY_UNAVAILABLE: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The audit key (security.audit.key, or a previous key) cannot be used: its environment variable is not set, its file cannot be read or created, it holds fewer than 32 bytes, or the log\'s last record or an anchored head was signed by a key that is not configured. The message names the variable or file, never the key.',
    howToSolve: 'Set the variable or fix the file (chmod 600, outside the state dir); after a key rotation, list the old key under security.audit.previousKeys.',
  },
  HOST_ERR_AUDIT_ANCHOR_UNAVAILABLE: {
    category: 'TransientInfrastructure', severity: 'Critical', transient: true,
    description: 'An audit anchor (the bus stream holding the chain heads, or the anchor file) cannot be read, or its last entry is not a chain head, so the host cannot tell whether the audit log still continues its anchored chain; it does not start rather than guess.',
    howToSolve: 'Bring the anchor back (NATS reachable, the auditAnchor stream in the streams file, the anchor file readable), then start again.',
  },
  HOST_ERR_AUDIT_ANCHOR_MISMATCH: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The audit log does not continue the chain its anchor holds (details.reason: deleted, emptied, tail_cut, replayed, or anchor_forged when the anchored head itself is not signed by the audit key). The host never starts a new chain silently: it refuses to start until an operator acknowledges a reset.',
    howToSolve: 'Run wm audit verify for the finding, keep the log and the anchor as evidence, investigate who could write the state dir, then acknowledge a new chain with wm audit reset --reason "..." (itself audited and anchored) and start the host.',
  },
  HOST_ERR_SECRETS_NOT_CONFIGURED: {
    category: 'PermanentInfrastructure', severity: 'Medium', transient: false,
    description: 'A secrets route was called on a host that runs no RotationEngine (no secrets configuration, no credentials instance) (HTTP 503).',
    howToSolve: 'Configure a credentials instance and the secrets block in the host config, or do not call the secrets routes on this host.',
  },
  HOST_ERR_SECRETS_STATE_CORRUPT: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The secret consumer table (<stateDir>/secrets/consumers.json) cannot be read or does not match its schema; the host refuses to start rather than lose track of which workers use which secrets.',
    howToSolve: 'Restore the file from a backup, or move it aside (rotations will then not reach workers created before the restart until they are recreated).',
  },
  HOST_ERR_ROTATION_JOURNAL_CORRUPT: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The rotation journal (<stateDir>/rotation/journal.json) cannot be read or does not match its schema; the host refuses to start rather than forget rotations in progress.',
    howToSolve: 'Restore the file from a backup, or move it aside (rotations it recorded will then be neither resumed nor rolled back: check the versions of the secrets it names).',
  },
  HOST_ERR_ROTATION_INTERRUPTED: {
    category: 'TransientInfrastructure', severity: 'Medium', transient: true,
    description: 'The host stopped (or crashed) before a rotation promoted its new version; at the next start the rotation was rolled back and its pending version revoked.',
    howToSolve: 'Nothing to repair; rotate again if the rotation is still wanted.',
  },
  HOST_ERR_ROTATION_STOPPED: {
    category: 'TransientInfrastructure', severity: 'Low', transient: true,
    description: 'A rotation or rollback was requested while the rotation engine was not running (host starting or stopping).',
    howToSolve: 'Retry once the host has started.',
  },
  HOST_ERR_ROTATION_VERSION_FAILED: {
    category: 'ClientValidation', severity: 'Medium', transient: false,
    description: 'A rollback (or another stage move) would make current a version whose rotation failed (its test, or a later step); a failed version never becomes current again, so nothing was changed (HTTP 409). details name the version, the failed rotation, its step and error code.',
    howToSolve: 'Leave the current version, or rotate again (a new rotation creates a new version). GET /v1/secrets/{name}/versions marks failed versions with `failure`; GET /v1/secrets/{name}/rotations shows the failed rotation and its rollback.',
  },
  HOST_ERR_ROTATION_ROLLBACK_PENDING: {
    category: 'ClientValidation', severity: 'Medium', transient: true,
    description: 'A rotation was requested while a rollback of the same secret has not finished (it is retrying with backoff: the credentials instance or a consumer keeps failing); the rotation was refused, or cancelled if it was already queued (HTTP 409). details give the rollback id, its step, attempts, next attempt and last error.',
    howToSolve: 'Fix what the rollback\'s last error names, then roll back (POST /v1/secrets/{name}/rollback, wm secrets rollback) to run its next attempt now, or wait for it; rotate once it has completed.',
  },
  HOST_ERR_WORKER_TRANSITION_ILLEGAL: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'A worker state change is not allowed from the state the worker ledger holds (for example anything out of Terminated or Failed); it was not applied. Provider events that cause it are logged and counted.',
    howToSolve: 'Read the worker again: its state has moved on. The legal moves are the table LEGAL_TRANSITIONS in host/src/workers/ledger/workerStateMachine.ts.',
  },
  HOST_ERR_IDEMPOTENCY_CONFLICT: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The Idempotency-Key was already used by the same tenant and principal for a different request body, and has not expired (HTTP 409).',
    howToSolve: 'Use a new key for a new request; repeat a request only with its original body.',
  },
  HOST_ERR_LABEL_SELECTOR_INVALID: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'A label selector does not parse, or names a key or value that is not valid Kubernetes label syntax; the message gives the column and the problem.',
    howToSolve: 'Write requirements as k=v, k==v, k!=v, k in (a,b), k notin (a,b), k or !k, joined by commas.',
  },
  HOST_ERR_WORKER_RECORD_EXISTS: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The worker ledger already holds a record with this worker id.',
    howToSolve: 'Choose another worker id, or read the existing worker.',
  },
  HOST_ERR_WORKER_RECORD_NOT_FOUND: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'The worker ledger holds no record with this worker id (never created, or purged after it finished).',
    howToSolve: 'Check the worker id; list workers to find it.',
  },
  HOST_ERR_WORKER_REVISION_CONFLICT: {
    category: 'ClientValidation', severity: 'Low', transient: true,
    description: 'A compare-and-set write to a worker record expected a revision the record is no longer at (someone else wrote it first), or the record changed under too many retries.',
    howToSolve: 'Read the record again and retry the change against its current revision.',
  },
  HOST_ERR_WORKER_RECORD_INVALID: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'A worker record, state or patch given to the worker ledger does not match its schema (for example a Failed state without a reason, or a spec field the RuntimeSpec does not know).',
    howToSolve: 'Fix the field named in the message; host/src/workers/ledger/workerRecord.ts holds the schema.',
  },
  HOST_ERR_WORKER_LIST_QUERY_INVALID: {
    category: 'ClientValidation', severity: 'Low', transient: false,
    description: 'A worker listing was asked with a limit outside 1-1000, an unknown phase or order, or a cursor the listing did not return.',
    howToSolve: 'Fix the parameter named in details.field; pass back nextCursor exactly as received.',
  },
  HOST_ERR_WORKER_STORE_CORRUPT: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'The worker ledger cannot be used: its SQLite file has a newer schema version than this host knows or a migration failed, or a stored record does not match the record schema.',
    howToSolve: 'Run the host version that wrote the file, or restore the ledger from a backup; the message names the file or record.',
  },
  HOST_ERR_WORKER_STORE_UNAVAILABLE: {
    category: 'TransientInfrastructure', severity: 'High', transient: true,
    description: 'The worker ledger could not be reached (JetStream KV bucket unreachable) or was used after it was closed.',
    howToSolve: 'Retry; check that NATS with JetStream runs, or that the host is not stopping.',
  },
  HOST_ERR_PLUGIN_FLOOD: {
    category: 'PermanentInfrastructure', severity: 'Critical', transient: false,
    description: 'A plugin instance sent events or log lines faster than its limits (`limits.channel`: eventsPerSecond, logBytesPerSecond) for `floodSeconds` consecutive seconds, and was quarantined so it cannot slow the host down.',
    howToSolve: 'Read the warn lines "plugin thread message dropped" naming the instance and the kind; fix the plugin (or raise its limits.channel rates if the volume is legitimate), then restart the host.',
  },
  HOST_ERR_SANDBOX_UNAVAILABLE: {
    category: 'Configuration', severity: 'Critical', transient: false,
    description: 'A `restricted` plugin instance cannot start because this machine cannot confine it: the restricted tier needs Linux, bubblewrap (`/usr/bin/bwrap`), util-linux\'s `prlimit`, and user namespaces the host\'s user may create. The host never falls back to a weaker tier.',
    howToSolve: 'Install the Debian packages bubblewrap and util-linux; enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; in a container, allow them in its seccomp/AppArmor profile). The message says which check failed.',
  },
} as const satisfies Record<string, ErrorCodeSpec>;

/** A host error code. */
export type HostErrorCode = keyof typeof HOST_ERROR_CODES;

registerErrorCatalog(HOST_ERROR_CODES);

/** Makes a host error; category, severity and transient come from the catalog. */
export function hostError(code: HostErrorCode, message: string, options: WorkerManagerErrorOptions = {}): WorkerManagerError {
  return new WorkerManagerError(code, message, options);
}
