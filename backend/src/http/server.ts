import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Readiness } from './readiness.js';

export interface HttpServerOptions {
  logger: Logger;
  readiness: Readiness;
  nodeId: string;
  /** Largest request body, in bytes. */
  bodyLimit?: number;
}

/** The node's HTTP server: liveness and readiness now; bridges and files register on it later. */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    // Per-request lines (probes hit /ready every few seconds) only when debugging.
    loggerInstance: quietRequests(options.logger) as FastifyBaseLogger,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
  });

  app.get('/health', async () => ({ status: 'up', nodeId: options.nodeId }));

  app.get('/ready', async (_req, reply) => {
    const { ready, checks } = options.readiness.report();
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not-ready',
      nodeId: options.nodeId,
      checks,
      degraded: options.readiness.degraded(),
    });
  });

  return app;
}

function quietRequests(logger: Logger): Logger {
  const verbose = logger.isLevelEnabled('debug');
  return logger.child({ component: 'http' }, verbose ? {} : { level: 'warn' });
}
