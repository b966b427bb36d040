import { ChatError } from './errors.js';
import type { ServerFrame } from './types.js';

/** Told that the bridge refused a frame: its error body and, when it gave one, why. */
export type Refused = (reason: string, message?: string) => void;

/**
 * A frame the bridge refused (`{type:"err", body}`). On the raw endpoint the refusal names the frame
 * by the `address` and `replyAddress` it was sent with, in its `refused` field (docs/protocol.md,
 * "Which frame was refused"); a server that does not name it leaves both undefined.
 */
export interface Refusal {
  reason: string;
  message?: string;
  address?: string;
  replyAddress?: string;
}

/**
 * The refusal an err frame carries, or undefined for a reply failure. Both are `err` frames. A
 * reply failure (Vert.x's) is addressed to the request's replyAddress by a top-level `address` and
 * has `failureType` and `failureCode`, never a body; a refusal has a string `body`. A top-level
 * `address` without a string body is therefore a reply failure whatever else it lacks: older
 * servers and Vert.x send nothing else with one. `isPendingReply` tells whether an address is the
 * replyAddress of a request still waiting: a frame that has both a body and the failure fields is
 * taken for the reply failure it says it is only when it is addressed to such a request.
 */
export function refusalOf(
  frame: ServerFrame,
  isPendingReply: (address: string) => boolean,
): Refusal | undefined {
  if (typeof frame.address === 'string') {
    if (typeof frame.body !== 'string') return undefined;
    const failureFields = frame.failureType !== undefined || frame.failureCode !== undefined;
    if (failureFields && isPendingReply(frame.address)) return undefined;
  }
  // A top-level `address` or `replyAddress` of a refusal names nothing: only `refused` does.
  return {
    reason: typeof frame.body === 'string' ? frame.body : 'unknown',
    ...(typeof frame.message === 'string' ? { message: frame.message } : {}),
    ...namedIn(frame.refused),
  };
}

/** The `address` and `replyAddress` a refusal's `refused` field names; values of other types are ignored. */
function namedIn(refused: unknown): Pick<Refusal, 'address' | 'replyAddress'> {
  if (typeof refused !== 'object' || refused === null || Array.isArray(refused)) return {};
  const { address, replyAddress } = refused as Record<string, unknown>;
  return {
    ...(typeof address === 'string' ? { address } : {}),
    ...(typeof replyAddress === 'string' ? { replyAddress } : {}),
  };
}

/** The error an operation fails with when the bridge refused its frame; `what` names the operation. */
export function bridgeRefusal(what: string, reason: string, message?: string): ChatError {
  return new ChatError('BRIDGE', `${what}: the bridge refused: ${reason}${message ? ` (${message})` : ''}`, {
    reason,
  });
}
