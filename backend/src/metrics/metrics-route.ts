import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

/** `GET /metrics`: the Prometheus text format, scraped by Prometheus (k8s/prometheus). */
export async function metricsRoute(app: FastifyInstance, opts: { metrics: Metrics }): Promise<void> {
  app.get('/metrics', async (_req, reply) => {
    const text = await opts.metrics.text();
    return reply.header('content-type', opts.metrics.contentType).send(text);
  });
}
