import { ChatFailure } from '@switchboard/protocol';

/**
 * Why something failed.
 *
 * - `TIMEOUT`, `NO_HANDLERS`, `RECIPIENT_FAILURE`, `ERROR`: the bus failures of the Vert.x bridge
 *   (`RECIPIENT_FAILURE` carries the chat service's HTTP-like code in `code`: 400, 404, 409, 503…).
 *   `TIMEOUT` is also used when the client gave up waiting (`requestTimeoutMs`).
 * - `DISCONNECTED`: the connection was lost before the reply came.
 * - `CLOSED`: the client was closed (or the room left) before the operation finished.
 * - `AUTH`: the server refused the connection (close 1008: bad or expired token, origin refused).
 * - `BRIDGE`: the bridge refused a frame (`{type:"err", body}`); `reason` holds the body, e.g.
 *   `access_denied`, `rate_limited`.
 * - `UPLOAD`: `POST /files` failed; `code` is the HTTP status (0 when the request did not complete).
 * - `INVALID`: the call itself was invalid (blank text, frame too large, bad room name).
 * - `STORAGE`: the outbox storage failed (the message is still sent from memory).
 * - `CONFIG`: the client cannot work as configured (no WebSocket implementation, bad URL).
 */
export type FailureType =
  | 'TIMEOUT'
  | 'NO_HANDLERS'
  | 'RECIPIENT_FAILURE'
  | 'ERROR'
  | 'DISCONNECTED'
  | 'CLOSED'
  | 'AUTH'
  | 'BRIDGE'
  | 'UPLOAD'
  | 'INVALID'
  | 'STORAGE'
  | 'CONFIG';

export interface ChatErrorOptions {
  /** The failure code: the recipient's code, an HTTP status, a close code; -1 when none applies. */
  code?: number;
  /** A machine-readable detail, e.g. the bridge's error body `access_denied` or a close reason. */
  reason?: string;
  cause?: unknown;
}

/** Every error the library reports or rejects with. */
export class ChatError extends Error {
  override readonly name = 'ChatError';
  readonly failureType: FailureType;
  readonly code: number;
  readonly reason: string | undefined;

  constructor(failureType: FailureType, message: string, options: ChatErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.failureType = failureType;
    this.code = options.code ?? -1;
    this.reason = options.reason;
  }

  /**
   * Whether the same request may succeed later: the bus could not answer (connection lost,
   * timeout, no handler yet, a node died) or the message store is unavailable (503).
   */
  get retryable(): boolean {
    switch (this.failureType) {
      case 'DISCONNECTED':
      case 'TIMEOUT':
      case 'NO_HANDLERS':
      case 'ERROR':
        return true;
      case 'RECIPIENT_FAILURE':
        return this.code === ChatFailure.UNAVAILABLE;
      default:
        return false;
    }
  }

  /** `ChatError.is(err, 'RECIPIENT_FAILURE', 409)`: narrows `err` and checks type and code. */
  static is(err: unknown, failureType?: FailureType, code?: number): err is ChatError {
    return (
      err instanceof ChatError &&
      (failureType === undefined || err.failureType === failureType) &&
      (code === undefined || err.code === code)
    );
  }
}

/** Any thrown value as a ChatError (an `ERROR` wrapping it, unless it is one). */
export function toChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  return new ChatError('ERROR', err instanceof Error ? err.message : String(err), { cause: err });
}
