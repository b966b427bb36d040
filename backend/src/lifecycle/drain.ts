import { spreadOver } from './spread.js';

/** A client connection that can be asked to reconnect elsewhere (WebSocket and SockJS sessions). */
export interface Reconnectable {
  requestReconnect(reason: string, afterMs: number): void;
}

/** What a drain needs from the node, in the order it uses them. Everything is injected. */
export interface DrainPlan {
  /** Readiness false and new connections refused; called first, synchronously. */
  stopAccepting(): void;
  /** The client sessions still open. */
  sessions(): readonly Reconnectable[];
  /** gRPC: health NOT_SERVING, streams end UNAVAILABLE + `reconnect`, GOAWAY, bounded close. */
  stopGrpc(): Promise<void>;
  /** The services stop taking bus requests and finish the ones in flight. */
  stopServices(): Promise<void>;
  /** Pending store writes reach the database. */
  flushStore(): Promise<void>;
  /** Lease and subscriptions removed from the registry at once; node links closed. */
  leaveCluster(): Promise<void>;
  /** HTTP server and store connections closed. */
  closeServers(): Promise<void>;
  timing: DrainTiming;
  observer?: DrainObserver;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export interface DrainTiming {
  /** Longest spread of the reconnect requests. */
  windowMs: number;
  /** Reconnect requests per second at most; fewer sessions take a shorter window. */
  reconnectsPerSec: number;
  /** How long sessions may take to close after their request before they are cut. */
  sessionCloseGraceMs: number;
}

export interface DrainObserver {
  reconnectRequested(transport: 'ws' | 'grpc', n?: number): void;
  drainFinished(seconds: number): void;
}

export interface DrainReport {
  ms: number;
  sessionsAtStart: number;
  sessionsLeft: number;
  spreadMs: number;
  phases: Record<string, number>;
}

const RECONNECT_REASON = 'node draining';

/**
 * The graceful drain: not ready → reconnect requests spread over a window (WebSocket) and
 * GOAWAY (gRPC) → sessions gone → services finish in-flight requests → store flushed → cluster
 * left → servers closed. Each phase is timed; the caller bounds the whole by its deadline.
 */
export async function drain(plan: DrainPlan): Promise<DrainReport> {
  const t0 = Date.now();
  const phases: Record<string, number> = {};
  const timed = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
    const t = Date.now();
    try {
      await fn();
    } catch (err) {
      plan.log.warn({ phase: name, err: String(err) }, `drain: ${name} failed; going on`);
    }
    phases[name] = Date.now() - t;
  };

  plan.stopAccepting();
  const initial = plan.sessions();
  const { windowMs, reconnectsPerSec, sessionCloseGraceMs } = plan.timing;
  const spreadMs = Math.min(windowMs, Math.ceil((initial.length / reconnectsPerSec) * 1000));
  plan.log.info(
    { sessions: initial.length, spreadMs },
    `drain: not ready; asking ${initial.length} sessions to reconnect over ${spreadMs} ms`,
  );

  const spread = spreadOver(initial, spreadMs, (s) => {
    s.requestReconnect(RECONNECT_REASON, 0);
    plan.observer?.reconnectRequested('ws');
  });
  await Promise.all([
    timed('grpc', () => plan.stopGrpc()),
    timed('sessions', async () => {
      await spread.done;
      await waitUntil(() => plan.sessions().length === 0, sessionCloseGraceMs);
      // Sessions that connected in a race with stopAccepting, or ignored the request: cut now.
      for (const s of plan.sessions()) s.requestReconnect(RECONNECT_REASON, 0);
    }),
  ]);
  const sessionsLeft = plan.sessions().length;
  await timed('services', () => plan.stopServices());
  await timed('store', () => plan.flushStore());
  await timed('cluster', () => plan.leaveCluster());
  await timed('servers', () => plan.closeServers());

  const ms = Date.now() - t0;
  plan.observer?.drainFinished(ms / 1000);
  const report = { ms, sessionsAtStart: initial.length, sessionsLeft, spreadMs, phases };
  plan.log.info(report, `drain: complete in ${ms} ms`);
  return report;
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
