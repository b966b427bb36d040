import type { FastifyInstance } from 'fastify';

export interface PrestopOptions {
  /** Turns readiness false and refuses new connections (idempotent). */
  stopAccepting(): void;
  /** How long the hook holds before answering: the time endpoints need to drop this pod. */
  waitMs: number;
}

/**
 * `GET /prestop`, for Kubernetes' PreStop `httpGet` hook: the node leaves the load balancers'
 * rotation (readiness false) and the hook holds for `waitMs`, so that by the time SIGTERM
 * arrives no new connection is routed here. Existing connections keep working until the drain.
 */
export async function prestopRoute(app: FastifyInstance, opts: PrestopOptions): Promise<void> {
  app.get('/prestop', async () => {
    const t0 = Date.now();
    opts.stopAccepting();
    await new Promise((r) => setTimeout(r, opts.waitMs));
    return { status: 'not-ready', waitedMs: Date.now() - t0 };
  });
}
