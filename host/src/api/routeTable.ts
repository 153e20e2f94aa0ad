import type { FastifyContextConfig, FastifyInstance, FastifySchema } from 'fastify';
import './routeConfig.ts';

/** One served route as registered: what the OpenAPI document and the route checks read. */
export interface RouteSpec {
  method: string;
  /** Fastify syntax (`/v1/workers/:id`). */
  url: string;
  schema: FastifySchema | undefined;
  config: FastifyContextConfig | undefined;
}

/**
 * Records every route registered on `app` from now on (fastify's `onRoute` hook), so it must be called before the
 * routes are added. HEAD routes fastify derives from GET routes are left out: they are the GET route.
 */
export function collectRoutes(app: FastifyInstance): readonly RouteSpec[] {
  const routes: RouteSpec[] = [];
  app.addHook('onRoute', (options) => {
    const methods = Array.isArray(options.method) ? options.method : [options.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: options.url, schema: options.schema, config: options.config as FastifyContextConfig | undefined });
    }
  });
  return routes;
}
