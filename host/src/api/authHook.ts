import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WorkerManagerError, type ResourceQuota } from '@worker-manager/plugin-sdk';
import type { AccessGuard } from '../security/authn/AccessGuard.ts';
import type { Principal } from '../security/Principal.ts';
import { apiErrorBody } from './apiErrorBody.ts';
import './routeConfig.ts';
import { toApiError } from './toApiError.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by the auth hook before any handler of a protected route runs. */
    principal?: Principal;
    /** For a read whose audit record is written while it runs: settles once the record is durable. */
    audited?: Promise<void>;
  }
}

/**
 * Actions that change nothing and answer with a plain body: their handler runs while the audit record of the decision
 * is being written, and the answer waits for it (onSend). Under a storm of requests a listing otherwise queues twice,
 * for the write and for the handler. Streams (logs, events) are not here: their answer starts before it ends.
 */
const READS_AUDITED_WHILE_RUNNING: ReadonlySet<string> = new Set(['worker:read', 'plugin:read']);

/** What the auth hook checks with. */
export interface AuthHookOptions {
  guard: AccessGuard;
  /**
   * Require authentication on `/metrics` too. Absent here it is public; `startApiServer` fills it in from the config
   * (`security.authentication.protectMetrics`, else protected when the API listens beyond loopback).
   */
  protectMetrics?: boolean;
}

const CHALLENGE = 'Bearer realm="worker-manager"';

/**
 * Guards every route that is not `config.public`: authentication in `onRequest` (before the body is even read, so an
 * anonymous caller cannot make the server parse anything), authorization in `preHandler` with the route's
 * `config.action` and `config.resource` (after validation, so a create's requested resources are known and priced).
 * A protected route that declares no action is refused (fail closed). Unknown `/v1` paths need authentication too, so
 * the route map is not shown to anonymous callers.
 */
export function registerAuthHook(app: FastifyInstance, options: AuthHookOptions): void {
  const { guard } = options;
  app.decorateRequest('principal', undefined);

  const needsAuthentication = (req: FastifyRequest): boolean => {
    if (req.is404) return req.url.startsWith('/v1/') || req.url === '/v1';
    if (req.routeOptions.config.public === true) return options.protectMetrics === true && req.routeOptions.url === '/metrics';
    return true;
  };

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!needsAuthentication(req)) return;
    try {
      req.principal = await guard.authenticate(req.headers.authorization, { correlationId: req.id, channel: 'api' });
    } catch (error) {
      if ((error as { code?: unknown }).code === 'WM_ERR_AUTHENTICATION') reply.header('www-authenticate', CHALLENGE);
      throw error;
    }
  });

  app.addHook('preHandler', async (req: FastifyRequest) => {
    if (req.is404 || req.routeOptions.config.public === true) return;
    const { action, resource } = req.routeOptions.config;
    const principal = req.principal;
    if (principal === undefined) throw new Error('auth hook: preHandler ran without an authenticated principal');
    if (action === undefined) {
      throw new WorkerManagerError('WM_ERR_AUTHORIZATION', `${req.method} ${req.routeOptions.url ?? ''} declares no action, so nobody may call it`, {
        details: { reason: 'undeclared_action', route: `${req.method} ${req.routeOptions.url ?? ''}` },
      });
    }
    const requested = action === 'worker:create' ? (req.body as { spec?: { resources?: ResourceQuota } } | undefined)?.spec?.resources : undefined;
    const grant = await guard.check({
      principal,
      action,
      resource: resource?.(req) ?? { type: 'Host', id: '*' },
      requested,
      correlationId: req.id,
      channel: 'api',
      deferAudit: READS_AUDITED_WHILE_RUNNING.has(action),
    });
    if (grant.audited !== undefined) req.audited = grant.audited;
  });

  // Nothing leaves before its audit record is written; an audit that failed is answered instead of the read.
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (req.audited === undefined) return payload;
    try {
      await req.audited;
      return payload;
    } catch (error) {
      const { status, body } = apiErrorBody(toApiError(error), req.id);
      void reply.status(status).type('application/json');
      return JSON.stringify(body);
    }
  });
}
