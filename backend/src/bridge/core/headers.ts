import { ChatHeader, RESERVED_HEADER_PREFIX } from '@switchboard/protocol';
import { continueOrStart, TRACEPARENT } from '../../trace/trace-context.js';
import type { BridgeSocketInfo } from './hook.js';

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
  if (headers)
    for (const [k, v] of Object.entries(headers)) if (!k.startsWith(RESERVED_HEADER_PREFIX)) out[k] = v;
  out[TRACEPARENT] = continueOrStart(out[TRACEPARENT] ?? traceparent);
  out[ChatHeader.session] = socket.session;
  out[ChatHeader.node] = socket.node;
  if (socket.principal) out[ChatHeader.verifiedUser] = socket.principal.user;
  return out;
}
