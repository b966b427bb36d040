import { continueOrStart, TRACEPARENT } from '../../trace/trace-context.js';
import type { BridgeSocketInfo } from './hook.js';

/** Headers the bridge stamps on every message it puts on the bus (client-sent `sb-*` are dropped). */
export const BRIDGE_HEADER = {
  session: 'sb-session',
  node: 'sb-node',
  /** Present only when a verified token names the user. */
  verifiedUser: 'sb-user',
} as const;

/**
 * Our headers win: a client cannot pose as another session, node or user (every bridge). The
 * trace comes from the message's headers, else `traceparent` (a gRPC call's metadata), else a new one.
 */
export function stampHeaders(
  socket: BridgeSocketInfo,
  headers: Record<string, string> | undefined,
  traceparent?: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers) for (const [k, v] of Object.entries(headers)) if (!k.startsWith('sb-')) out[k] = v;
  out[TRACEPARENT] = continueOrStart(out[TRACEPARENT] ?? traceparent);
  out[BRIDGE_HEADER.session] = socket.session;
  out[BRIDGE_HEADER.node] = socket.node;
  if (socket.principal) out[BRIDGE_HEADER.verifiedUser] = socket.principal.user;
  return out;
}
