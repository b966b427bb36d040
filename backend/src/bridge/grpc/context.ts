import { randomUUID } from 'node:crypto';
import { type Metadata, status } from '@grpc/grpc-js';
import type { Principal } from '../../auth/principal.js';
import type { TokenVerifier } from '../../auth/tokens.js';
import { atTokenExpiry, verifyToken } from '../core/handshake.js';
import { stampHeaders as stampBridgeHeaders } from '../core/headers.js';
import {
  type BridgeEvent,
  type BridgeEventType,
  type BridgeHookResult,
  type BridgeSocketInfo,
  hookVerdict,
} from '../core/hook.js';
import { type BridgeOptions, hookFor } from '../core/options.js';
import { checkPermission, type CompiledPermission } from '../core/permissions.js';
import type { GrpcAdmission } from './admission.js';
import { GrpcError } from './status.js';
import { TRACEPARENT } from '../../trace/trace-context.js';

/** What both gRPC services share: the bus permissions, hook and auth of the WebSocket bridge. */
export interface GrpcBridgeContext {
  nodeId: string;
  options: BridgeOptions;
  verifier: TokenVerifier | undefined;
  /** Most messages a server stream queues for a client that does not read (flow.ts). */
  maxStreamQueue: number;
  /** Rate, in-flight and stream limits per connection (admission.ts). */
  admission: GrpcAdmission;
}

/**
 * Ends a stream when its token expires, as the WebSocket bridge closes its socket (1008):
 * `end` is called with UNAUTHENTICATED. Returns the function that cancels the timer.
 */
export function endAtExpiry(
  principal: Principal | undefined,
  end: (code: status, details: string) => void,
): () => void {
  return atTokenExpiry(principal, () => end(status.UNAUTHENTICATED, 'auth_error: token expired'));
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The principal of a call from `authorization: Bearer <jwt>`; UNAUTHENTICATED without a valid one. */
export async function authenticateCall(
  ctx: GrpcBridgeContext,
  metadata: Metadata,
): Promise<Principal | undefined> {
  if (!ctx.verifier) return undefined;
  const header = metadata.get('authorization')[0];
  const token = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
  if (!token) {
    throw new GrpcError(
      status.UNAUTHENTICATED,
      header === undefined
        ? 'not_logged_in: send metadata "authorization: Bearer <token>"'
        : 'auth_error: expected "authorization: Bearer <token>"',
    );
  }
  const handshake = await verifyToken(ctx.verifier, token);
  if ('refused' in handshake)
    throw new GrpcError(status.UNAUTHENTICATED, `${handshake.refused}: ${handshake.reason}`);
  return handshake.principal;
}

/** One bridge "socket" for hooks: a stream, or the connection (peer) of a unary call. */
export function socketInfo(
  ctx: GrpcBridgeContext,
  principal: Principal | undefined,
  peer: string,
  session: string = randomUUID(),
): BridgeSocketInfo {
  return { session, node: ctx.nodeId, principal, remoteAddress: peer, attributes: new Map() };
}

/** Session id of unary calls: one per client connection, so chat.leave matches chat.join. */
export function peerSession(peer: string): string {
  return `grpc:${peer}`;
}

/** Deny by default, as the WebSocket bridge: PERMISSION_DENIED, or UNAUTHENTICATED when a login would help. */
export function requirePermission(
  permissions: CompiledPermission[],
  address: string,
  body: unknown,
  principal: Principal | undefined,
): void {
  const verdict = checkPermission(permissions, address, body, principal?.authorities);
  if (verdict === 'needs_login')
    throw new GrpcError(status.UNAUTHENTICATED, `not_logged_in: ${address} needs an authenticated caller`);
  if (verdict === 'denied')
    throw new GrpcError(status.PERMISSION_DENIED, `access_denied: ${address} is not permitted`);
}

/** Runs the bridge hook; a refusal becomes PERMISSION_DENIED naming the hook's reason. */
export async function runHook(ctx: GrpcBridgeContext, event: BridgeEvent): Promise<void> {
  const hook = hookFor(ctx.options, event.type);
  if (!hook) return;
  let result: BridgeHookResult;
  try {
    result = await hook(event);
  } catch {
    result = 'rejected';
  }
  const reason = hookVerdict(result);
  if (reason === true) return;
  throw new GrpcError(
    reason === 'not_logged_in' ? status.UNAUTHENTICATED : status.PERMISSION_DENIED,
    `${reason}: ${event.frame?.address ?? event.type}`,
  );
}

/** Hook events that cannot refuse anything (closed, registered): errors are ignored. */
export function notifyHook(ctx: GrpcBridgeContext, type: BridgeEventType, socket: BridgeSocketInfo): void {
  const hook = hookFor(ctx.options, type);
  if (!hook) return;
  void Promise.resolve()
    .then(() => hook({ type, socket }))
    .catch(() => {});
}

/**
 * Our headers win (bridge/core/headers.ts); the trace comes from the message's headers, else the
 * call's `traceparent` metadata, else a new one.
 */
export function stampHeaders(
  socket: BridgeSocketInfo,
  headers: Record<string, string> | undefined,
  metadata?: Metadata,
): Record<string, string> {
  const fromCall = metadata?.get(TRACEPARENT)[0];
  return stampBridgeHeaders(socket, headers, typeof fromCall === 'string' ? fromCall : undefined);
}
