import { type Metadata, status as Status, type StatusObject } from '@grpc/grpc-js';
import { ChatFailure } from '@switchboard/protocol';
import { ChatError } from '../errors.js';

/** Trailers the bridge adds to a bus failure (docs/grpc.md). */
const FAILURE_TYPE = 'vertx-failure-type';
const FAILURE_CODE = 'vertx-failure-code';
/** Trailer of a stream ended by a draining node: reconnect (elsewhere) and Join with since. */
const RECONNECT = 'reconnect';

export type GrpcStatusLike = Pick<StatusObject, 'code' | 'details'> & { metadata?: Metadata | undefined };

function trailer(s: GrpcStatusLike, key: string): string | undefined {
  const v = s.metadata?.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** The status name (`UNAVAILABLE`) of a code. */
export function statusName(code: number): string {
  return (Status as unknown as Record<number, string>)[code] ?? `status ${code}`;
}

/** The reason a bridge status names first (`access_denied: chat.join …` → `access_denied`). */
function leadingReason(details: string): string | undefined {
  return /^([a-z_]+):/.exec(details)?.[1];
}

/**
 * A call's failure as the same `ChatError` the WebSocket client reports, so apps handle both
 * transports alike. A bus failure keeps its type and code (the bridge's `vertx-failure-*`
 * trailers: RECIPIENT_FAILURE with the chat service's 400/404/409/503…); otherwise by status:
 * UNAUTHENTICATED → AUTH, PERMISSION_DENIED → BRIDGE (`reason` the bridge's, e.g. access_denied),
 * INVALID_ARGUMENT and other refusals of the call itself → INVALID, DEADLINE_EXCEEDED → TIMEOUT,
 * NOT_FOUND / ALREADY_EXISTS → RECIPIENT_FAILURE 404 / 409, and what a node going away causes
 * (UNAVAILABLE, CANCELLED, INTERNAL, UNKNOWN…) → ERROR, which is retryable. `code` is then the
 * gRPC status code.
 */
export function chatErrorOf(s: GrpcStatusLike, what: string): ChatError {
  const details = s.details || statusName(s.code);
  const message = `${what}: ${details}`;
  const type = trailer(s, FAILURE_TYPE);
  const code = Number(trailer(s, FAILURE_CODE));
  if (type !== undefined) {
    const known = ['TIMEOUT', 'NO_HANDLERS', 'RECIPIENT_FAILURE'] as const;
    const t = known.find((k) => k === type) ?? 'ERROR';
    return new ChatError(t, message, { code: Number.isFinite(code) ? code : -1, reason: statusName(s.code) });
  }
  switch (s.code) {
    case Status.UNAUTHENTICATED:
      return new ChatError('AUTH', message, { code: s.code, reason: leadingReason(details) ?? 'auth_error' });
    case Status.PERMISSION_DENIED:
      return new ChatError('BRIDGE', message, {
        code: s.code,
        reason: leadingReason(details) ?? 'access_denied',
      });
    case Status.INVALID_ARGUMENT:
    case Status.OUT_OF_RANGE:
    case Status.FAILED_PRECONDITION:
    case Status.UNIMPLEMENTED:
    case Status.RESOURCE_EXHAUSTED: // a message over the size limit: the same request fails again
      return new ChatError('INVALID', message, { code: s.code, reason: statusName(s.code) });
    case Status.DEADLINE_EXCEEDED:
      return new ChatError('TIMEOUT', message, { code: s.code, reason: statusName(s.code) });
    case Status.NOT_FOUND:
      return new ChatError('RECIPIENT_FAILURE', message, {
        code: ChatFailure.NOT_FOUND,
        reason: statusName(s.code),
      });
    case Status.ALREADY_EXISTS:
      return new ChatError('RECIPIENT_FAILURE', message, {
        code: ChatFailure.CONFLICT,
        reason: statusName(s.code),
      });
    default:
      return new ChatError('ERROR', message, { code: s.code, reason: statusName(s.code) });
  }
}

/**
 * Whether a Join stream's end means "the connection went away: reconnect with backoff and Join
 * with since" rather than a refusal of the join: the stream ended (OK), the node stopped or
 * drained (UNAVAILABLE, with or without the `reconnect` trailer), the server cancelled it or cut
 * it for not reading (RESOURCE_EXHAUSTED), or the transport broke (INTERNAL, UNKNOWN). A bus or
 * chat failure (with the bridge's failure trailers) is a refusal instead, handled as the
 * WebSocket client handles a failed chat.join.
 */
export function endsConnection(s: GrpcStatusLike): boolean {
  if (trailer(s, FAILURE_TYPE) !== undefined) return false;
  switch (s.code) {
    case Status.OK:
    case Status.UNAVAILABLE:
    case Status.CANCELLED:
    case Status.RESOURCE_EXHAUSTED:
    case Status.INTERNAL:
    case Status.UNKNOWN:
    case Status.ABORTED:
      return true;
    default:
      return false;
  }
}

/** A node asked for the reconnection (drain): spread out with jitter instead of backing off. */
export function isDrain(s: GrpcStatusLike): boolean {
  return trailer(s, RECONNECT) === 'true';
}
