import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (`traceparent`) carried in bus headers, so one client action can be followed
 * across bridge → chat → store → publish on every node. No spans are recorded here: the ids are
 * what a log line or an OpenTelemetry collector in front would join on.
 *
 * Format (version 00): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
 */
export const TRACEPARENT = 'traceparent';

export interface TraceContext {
  traceId: string;
  spanId: string;
  flags: string;
}

const FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The context in a header value, or undefined when it is missing or invalid (all-zero ids, version ff). */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (typeof value !== 'string') return undefined;
  const m = FORMAT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags };
}

export function formatTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.flags}`;
}

/**
 * Random hex ids, cut from a pool refilled 4 KB at a time: an id is made for every frame and every
 * publish, and one `randomBytes` call each was 4% of a node's CPU in the many-rooms benchmark.
 * (Ids, not secrets: what matters is that they do not collide.)
 */
const pool = Buffer.alloc(4096);
let used = pool.length;

function randomHex(bytes: number): string {
  if (used + bytes > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const hex = pool.toString('hex', used, used + bytes);
  used += bytes;
  return hex;
}

/** A new trace (sampled flag set: nothing downstream drops it). */
export function startTrace(): string {
  return formatTraceparent({ traceId: randomHex(16), spanId: randomHex(8), flags: '01' });
}

/** At an edge (bridge frame, gRPC call): a valid incoming traceparent is kept, otherwise one is started. */
export function continueOrStart(incoming: string | undefined): string {
  const ctx = parseTraceparent(incoming);
  return ctx ? formatTraceparent(ctx) : startTrace();
}

/**
 * For what a handler sends on: the same trace with a new span id (this hop is the parent of
 * what follows). Without an incoming trace, a new one.
 */
export function childOf(incoming: string | undefined): string {
  const ctx = parseTraceparent(incoming);
  if (!ctx) return startTrace();
  return formatTraceparent({ ...ctx, spanId: randomHex(8) });
}
