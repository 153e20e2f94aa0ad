import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { buildOpenApiDocument, type OpenApiDocument } from './openApiDocument.ts';
import type { RouteSpec } from './routeTable.ts';

/**
 * `GET /v1/openapi.json`: the document of the routes this server serves, built on first request (every route is
 * registered by then, including those added after this one) and kept. Public, like any API description.
 */
export function registerOpenApiRoutes(app: FastifyInstance, routes: readonly RouteSpec[]): void {
  let document: OpenApiDocument | undefined;
  app.get(
    '/v1/openapi.json',
    {
      schema: {
        summary: 'This document (OpenAPI 3.1)',
        response: { 200: Type.Object({ openapi: Type.String() }, { additionalProperties: true, description: 'The OpenAPI 3.1 document' }) },
      },
      config: { public: true },
    },
    async () => {
      document ??= buildOpenApiDocument(routes);
      return document;
    },
  );
}
