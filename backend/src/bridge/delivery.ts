import { randomUUID } from 'node:crypto';
import { ChatHeader } from '@switchboard/protocol';
import { REPLY_PREFIX } from '../eventbus/address.js';
import { TRACEPARENT } from '../trace/trace-context.js';

/**
 * Headers the node uses between its own parts and never hands to a client: which node and
 * session sent a message (the sender's session id would let a recipient pose as it to the
 * chat service's presence), and the trace context of the node's spans. `sb-user`, the verified
 * sender, is delivered: docs/protocol.md documents it.
 */
const INTERNAL_HEADERS = new Set<string>([ChatHeader.node, ChatHeader.session, TRACEPARENT]);

/** The headers a client receives: the message's, without the internal ones. */
export function publicHeaders(
  headers: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!headers) return headers;
  let internal = false;
  for (const k in headers) {
    if (INTERNAL_HEADERS.has(k)) {
      internal = true;
      break;
    }
  }
  if (!internal) return headers;
  const out: Record<string, string> = {};
  for (const k in headers) if (!INTERNAL_HEADERS.has(k)) out[k] = headers[k]!;
  return out;
}

/**
 * The address a client replies to instead of the bus's reply address: 122 random bits, known
 * only to the connection the message was handed to, which alone can use it.
 */
export function newReplyAlias(): string {
  return randomUUID();
}

/** Bus-internal addresses (`__sb.*`: replies, node control) that no client may send to. */
export function isReservedAddress(address: string): boolean {
  return address.startsWith('__sb.') || address.startsWith(REPLY_PREFIX);
}
