import { EventBusError } from './failures.js';

/** Vert.x bridges cap addresses at 200 characters; the bus applies the same limit everywhere. */
export const MAX_ADDRESS_LENGTH = 200;

// Printable ASCII without spaces: addresses end up in logs, metrics labels and frame headers.
const ADDRESS_PATTERN = /^[\x21-\x7e]+$/;

export function validateAddress(address: unknown): string {
  if (typeof address !== 'string' || address.length === 0) {
    throw new EventBusError('INVALID_ADDRESS', 'address must be a non-empty string');
  }
  if (address.length > MAX_ADDRESS_LENGTH) {
    throw new EventBusError(
      'INVALID_ADDRESS',
      `address is ${address.length} characters, the limit is ${MAX_ADDRESS_LENGTH}`,
    );
  }
  if (!ADDRESS_PATTERN.test(address)) {
    throw new EventBusError(
      'INVALID_ADDRESS',
      `address ${JSON.stringify(address)} has characters outside printable ASCII (spaces and control characters are not allowed)`,
    );
  }
  return address;
}

export const REPLY_PREFIX = '__sb.reply.';

/** Reply addresses name the requesting node so a reply goes straight back to it. */
export function replyAddressFor(nodeId: string, n: number): string {
  return `${REPLY_PREFIX}${nodeId}.${n.toString(36)}`;
}

export function nodeOfReplyAddress(address: string): string | undefined {
  if (!address.startsWith(REPLY_PREFIX)) return undefined;
  const rest = address.slice(REPLY_PREFIX.length);
  const dot = rest.lastIndexOf('.');
  return dot > 0 ? rest.slice(0, dot) : undefined;
}
