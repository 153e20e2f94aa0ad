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
      // Scrapers rarely carry a user's token, and the series hold names and counts only (instances, methods, error
      // codes, secret names), never a value; like /healthz it sits outside /v1 and its authorization.
      config: { public: true },
      schema: { summary: 'Prometheus metrics of the host', tags: ['operations'], produces: [metrics.contentType.split(';')[0] ?? 'text/plain'] },
    },
    async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );
}
