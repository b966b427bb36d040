import { Metadata, status } from '@grpc/grpc-js';
import { ChatFailure } from '@switchboard/protocol';
import { EventBusError, ReplyException } from '../../eventbus/failures.js';

/** Trailer keys carrying a bus failure so that nothing of Vert.x's failure is lost. */
export const FAILURE_TRAILER = {
  code: 'vertx-failure-code',
  type: 'vertx-failure-type',
} as const;

/** A gRPC status with a message for the client; what handlers throw and callbacks receive. */
export class GrpcError extends Error {
  override readonly name = 'GrpcError';
  readonly details: string;
  constructor(
    readonly code: status,
    message: string,
    readonly metadata: Metadata = new Metadata(),
  ) {
    super(message);
    this.details = message;
  }
}

/**
 * Bus failures as gRPC statuses (the table in docs/grpc.md): TIMEOUT → DEADLINE_EXCEEDED, NO_HANDLERS →
 * NOT_FOUND, RECIPIENT_FAILURE → `recipientStatus(code)` (UNKNOWN unless told better) with the
 * code kept in the `vertx-failure-code` trailer, bad input → INVALID_ARGUMENT.
 */
export function toGrpcError(
  err: unknown,
  recipientStatus: (code: number) => status = () => status.UNKNOWN,
): GrpcError {
  if (err instanceof GrpcError) return err;
  if (err instanceof ReplyException) {
    const md = new Metadata();
    md.set(FAILURE_TRAILER.type, err.failureType);
    md.set(FAILURE_TRAILER.code, String(err.failureCode));
    switch (err.failureType) {
      case 'TIMEOUT':
        return new GrpcError(status.DEADLINE_EXCEEDED, err.message, md);
      case 'NO_HANDLERS':
        return new GrpcError(status.NOT_FOUND, err.message, md);
      case 'RECIPIENT_FAILURE':
        return new GrpcError(recipientStatus(err.failureCode), err.message, md);
      default:
        return new GrpcError(status.UNKNOWN, err.message, md);
    }
  }
  if (err instanceof EventBusError) {
    if (err.code === 'CLOSED') return new GrpcError(status.UNAVAILABLE, err.message);
    return new GrpcError(status.INVALID_ARGUMENT, err.message);
  }
  return new GrpcError(status.INTERNAL, 'internal error');
}

/** The chat service's HTTP-like failure codes (the protocol's ChatFailure) as gRPC statuses. */
export function chatRecipientStatus(code: number): status {
  switch (code) {
    case ChatFailure.BAD_REQUEST:
    case ChatFailure.TOO_LARGE:
      return status.INVALID_ARGUMENT;
    case 401:
      return status.UNAUTHENTICATED;
    case ChatFailure.FORBIDDEN:
      return status.PERMISSION_DENIED;
    case ChatFailure.NOT_FOUND:
      return status.NOT_FOUND;
    case ChatFailure.CONFLICT: // NAME_TAKEN too: one code
      return status.ALREADY_EXISTS;
    case ChatFailure.UNAVAILABLE:
      return status.UNAVAILABLE;
    case ChatFailure.INTERNAL:
      return status.INTERNAL;
    default:
      return status.UNKNOWN;
  }
}
