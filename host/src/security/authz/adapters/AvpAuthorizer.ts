import { IsAuthorizedCommand, VerifiedPermissionsClient, type VerifiedPermissionsClientConfig } from '@aws-sdk/client-verifiedpermissions';
import type { Logger } from '../../../observability/logger.ts';
import type { AuthzDecision, Authorizer, AuthzRequest } from '../Authorizer.ts';
import type { AvpSettings } from '../authzSettings.ts';
import { toIsAuthorizedInput } from './avpAttributeValue.ts';
import { toCedarRequest } from '../cedarRequest.ts';
import { denyWithError, failClosed } from '../failClosed.ts';

/** Additions to the SDK client's config (credentials in tests); region and endpoint come from the settings. */
export type AvpClientConfig = Partial<VerifiedPermissionsClientConfig>;

/**
 * AWS Verified Permissions: each decision is one `IsAuthorized` call with the entities and context the embedded engine
 * would see (same mapping). Fail closed: an unreachable service, a timeout (`timeoutMs` covers the SDK's retries), a
 * throttled or rejected call, or an answer with errors is a deny, with the reason in `errors` and the log.
 */
export class AvpAuthorizer implements Authorizer {
  readonly adapter = 'avp';
  readonly #settings: AvpSettings;
  readonly #log: Logger | undefined;
  readonly #clientConfig: AvpClientConfig;
  #client: VerifiedPermissionsClient | undefined;

  constructor(settings: AvpSettings, deps: { logger?: Logger; clientConfig?: AvpClientConfig } = {}) {
    this.#settings = settings;
    this.#log = deps.logger?.child({ component: 'authz', adapter: 'avp' });
    this.#clientConfig = deps.clientConfig ?? {};
  }

  async start(): Promise<void> {
    if (this.#client !== undefined) return;
    const { region, endpoint, timeoutMs } = this.#settings;
    this.#client = new VerifiedPermissionsClient({
      region,
      ...(endpoint === undefined ? {} : { endpoint }),
      requestHandler: { connectionTimeout: timeoutMs, requestTimeout: timeoutMs },
      ...this.#clientConfig,
    });
    this.#log?.info({ policyStoreId: this.#settings.policyStoreId, region, endpoint: endpoint ?? null }, 'verified permissions authorizer ready');
  }

  async stop(): Promise<void> {
    this.#client?.destroy();
    this.#client = undefined;
  }

  async authorize(request: AuthzRequest): Promise<AuthzDecision> {
    const decision = await this.#decide(request);
    if (decision.errors.length > 0) {
      this.#log?.warn({ action: request.action, resource: `${request.resource.type}::${request.resource.id}`, principal: request.principal.id, errors: decision.errors }, 'authorization denied: evaluation failed');
    }
    return decision;
  }

  async #decide(request: AuthzRequest): Promise<AuthzDecision> {
    const client = this.#client;
    if (client === undefined) return denyWithError('the avp authorizer is not started');
    let input;
    try {
      input = toIsAuthorizedInput(toCedarRequest(request), this.#settings.policyStoreId);
    } catch (error) {
      return denyWithError(`request cannot be evaluated: ${(error as Error).message}`);
    }
    const { timeoutMs } = this.#settings;
    try {
      const out = await client.send(new IsAuthorizedCommand(input), { abortSignal: AbortSignal.timeout(timeoutMs) });
      if (out.decision !== 'ALLOW' && out.decision !== 'DENY') return denyWithError(`verified permissions answered decision ${String(out.decision)}`);
      return failClosed({
        allow: out.decision === 'ALLOW',
        determining: (out.determiningPolicies ?? []).map((p) => p.policyId ?? '?'),
        errors: (out.errors ?? []).map((e) => ({ message: e.errorDescription ?? 'unknown evaluation error' })),
      });
    } catch (error) {
      const e = error as Error & { $metadata?: { httpStatusCode?: number } };
      const reason = e.name === 'AbortError' || e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${e.name}: ${e.message}`;
      return denyWithError(`verified permissions unavailable: ${reason}`);
    }
  }
}
