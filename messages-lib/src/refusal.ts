import { ChatError } from './errors.js';
import type { ServerFrame } from './types.js';

/** Told that the bridge refused a frame: its error body and, when it gave one, why. */
export type Refused = (reason: string, message?: string) => void;

/**
 * A frame the bridge refused (`{type:"err", body}`). On the raw endpoint the refusal names the frame
 * by the `address` and `replyAddress` it was sent with (docs/protocol.md, "Which frame was
 * refused"); a server that does not name it leaves both undefined.
 */
export interface Refusal {
  reason: string;
  message?: string;
  address?: string;
  replyAddress?: string;
}

/**
 * The refusal an err frame carries, or undefined for a reply failure. Both are `err` frames: a
 * refusal has a `body` (and may name its frame by `address`), a reply failure is addressed to the
 * request's replyAddress and has no body.
 */
export function refusalOf(frame: ServerFrame): Refusal | undefined {
  if (frame.body === undefined && typeof frame.address === 'string') return undefined;
  return {
    reason: typeof frame.body === 'string' ? frame.body : 'unknown',
    ...(typeof frame.message === 'string' ? { message: frame.message } : {}),
    ...(typeof frame.address === 'string' ? { address: frame.address } : {}),
    ...(typeof frame.replyAddress === 'string' ? { replyAddress: frame.replyAddress } : {}),
  };
}

/** The error an operation fails with when the bridge refused its frame; `what` names the operation. */
export function bridgeRefusal(what: string, reason: string, message?: string): ChatError {
  return new ChatError('BRIDGE', `${what}: the bridge refused: ${reason}${message ? ` (${message})` : ''}`, {
    reason,
  });
}
