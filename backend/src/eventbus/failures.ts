/**
 * Failure codes as Vert.x puts them on the wire (ReplyFailure ordinal).
 * Keeping the numbers identical lets bridge clients written for Vert.x read our failures.
 */
export const ReplyFailure = {
  TIMEOUT: 0,
  NO_HANDLERS: 1,
  RECIPIENT_FAILURE: 2,
  ERROR: 3,
} as const;

export type ReplyFailureType = keyof typeof ReplyFailure;

/** The failure of a request: `failureType` says why, `failureCode` carries the recipient's code. */
export class ReplyException extends Error {
  override readonly name = 'ReplyException';
  constructor(
    readonly failureType: ReplyFailureType,
    readonly failureCode: number,
    message: string,
  ) {
    super(message);
  }

  static timeout(address: string, timeoutMs: number): ReplyException {
    return new ReplyException(
      'TIMEOUT',
      -1,
      `Timed out after waiting ${timeoutMs}(ms) for a reply. address: ${address}`,
    );
  }

  static noHandlers(address: string): ReplyException {
    return new ReplyException('NO_HANDLERS', -1, `No handlers for address ${address}`);
  }
}

export type EventBusErrorCode =
  'INVALID_ADDRESS' | 'INVALID_BODY' | 'INVALID_OPTIONS' | 'MESSAGE_TOO_LARGE' | 'UNKNOWN_CODEC' | 'CLOSED';

/** Thrown synchronously for bad input to the bus API: nothing was sent. */
export class EventBusError extends Error {
  override readonly name = 'EventBusError';
  constructor(
    readonly code: EventBusErrorCode,
    message: string,
  ) {
    super(message);
  }
}
