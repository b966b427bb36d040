import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { prestopRoute } from '../lifecycle/prestop.js';
import type { Metrics } from '../metrics/metrics.js';
import { metricsRoute } from '../metrics/metrics-route.js';
import type { Readiness } from './readiness.js';
import { createHttpServer } from './server.js';

export interface AdminServerOptions {
  logger: Logger;
  readiness: Readiness;
  nodeId: string;
  metrics: Metrics;
  stopAccepting(): void;
  prestopWaitMs: number;
}

/**
 * The admin listener (ADMIN_PORT): `/prestop`, `/metrics`, `/health`, `/ready`. What controls the
 * node or describes it stays off the public port: no Service or Ingress exposes this one; the
 * kubelet (PreStop) and Prometheus reach the pod's port directly.
 */
export async function createAdminServer(o: AdminServerOptions): Promise<FastifyInstance> {
  const app = createHttpServer({
    logger: o.logger,
    readiness: o.readiness,
    nodeId: o.nodeId,
    bodyLimit: 1024,
  });
  await app.register(metricsRoute, { metrics: o.metrics });
  await app.register(prestopRoute, { stopAccepting: o.stopAccepting, waitMs: o.prestopWaitMs });
  return app;
}
