import type { FastifyRequest } from 'fastify';
import type { Principal } from '../security/Principal.ts';
import type { Action, AuthzResource } from '../security/authz/Authorizer.ts';

// Every route says, as data, what it does: the auth hook authorizes from `config`, and the OpenAPI document is built
// from `schema` and `config`, so neither needs a list of routes of its own that could drift from the real ones.
declare module 'fastify' {
  interface FastifyContextConfig {
    /** The action the route performs; every `/v1` route declares one, unless it is `public`. */
    action?: Action;
    /**
     * The resource the action targets, read from the request. It may run before the body is parsed or validated, so
     * it reads params and query defensively and never throws.
     */
    resource?: (req: FastifyRequest) => AuthzResource;
    /** Served to anyone, without authentication: liveness, readiness and the OpenAPI document. */
    public?: boolean;
  }
  interface FastifySchema {
    /** One line for the OpenAPI operation. */
    summary?: string;
    description?: string;
    tags?: readonly string[];
    /** Media types of the success answer when it is not only `application/json` (`text/event-stream`). */
    produces?: readonly string[];
    /** OpenAPI security requirements, for a route whose `config` does not say it all (a public route that may need a token). */
    security?: ReadonlyArray<Record<string, readonly string[]>>;
  }
}

/** The authenticated caller, when the auth hook ran (it decorates the request); undefined without authentication. */
export function callerOf(req: FastifyRequest): Principal | undefined {
  return (req as FastifyRequest & { principal?: Principal }).principal;
}

/** A path or query parameter as the resource function sees it: a string, or `*` when absent or not yet parsed. */
export function paramOf(req: FastifyRequest, part: 'params' | 'query', name: string): string {
  const bag = req[part] as Record<string, unknown> | undefined;
  const value = bag?.[name];
  return typeof value === 'string' && value.length > 0 ? value : '*';
}

/** What every WorkerService call gets from a request: its correlation id, and the caller's tenant and id (as owner). */
export function operationContext(req: FastifyRequest): { correlationId: string; tenant?: string; owner?: string } {
  const caller = callerOf(req);
  return {
    correlationId: req.id,
    ...(caller?.tenant === undefined ? {} : { tenant: caller.tenant }),
    ...(caller === undefined ? {} : { owner: caller.id }),
  };
}
