import type { FastifyInstance } from 'fastify';

/** What `/metrics` serves: a Prometheus text exposition and its content type (the host's `HostMetrics` is one). */
export interface MetricsSource {
  contentType: string;
  render(): Promise<string>;
}

/** `GET /metrics`, the Prometheus scrape endpoint. */
export function registerMetricsRoutes(app: FastifyInstance, metrics: MetricsSource): void {
  app.get(
    '/metrics',
    {
      // Outside /v1 and its authorization, like /healthz: a scraper holds a token, not a policy role. Whether it needs
      // that token (authentication only) is the auth hook's `protectMetrics`, by default true beyond loopback. The
      // series hold names and counts, never a value, and secret names only with observability.secretNameLabels.
      config: { public: true },
      schema: {
        summary: 'Prometheus metrics of the host',
        description: 'Needs a bearer token (any authenticated caller) when the API listens beyond loopback, or with `security.authentication.protectMetrics: true`; open on loopback by default, or anywhere with `protectMetrics: false`.',
        tags: ['operations'],
        produces: [metrics.contentType.split(';')[0] ?? 'text/plain'],
        // Anonymous or bearer: which one depends on where the API listens (see the description).
        security: [{}, { bearerAuth: [] }],
      },
    },
    async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );
}
