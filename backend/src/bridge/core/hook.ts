import type { Principal } from '../../auth/principal.js';
import type { BridgeErrorBody } from './refusals.js';

/** Bridge events, as Vert.x's BridgeEventType. */
export type BridgeEventType =
  | 'SOCKET_CREATED'
  | 'SOCKET_CLOSED'
  | 'SOCKET_IDLE'
  | 'SOCKET_PING'
  | 'SEND'
  | 'PUBLISH'
  | 'RECEIVE'
  | 'REGISTER'
  | 'REGISTERED'
  | 'UNREGISTER';

export interface BridgeSocketInfo {
  readonly session: string;
  readonly node: string;
  readonly principal: Principal | undefined;
  readonly remoteAddress: string | undefined;
  /** Free-form per-socket state for hooks (e.g. which rooms a socket joined). */
  readonly attributes: Map<string, unknown>;
}

export interface BridgeEvent {
  readonly type: BridgeEventType;
  readonly socket: BridgeSocketInfo;
  /**
   * The frame (client → server for SEND/PUBLISH/REGISTER/UNREGISTER, server → client for RECEIVE).
   * A hook may change it (e.g. add headers or rewrite the body) before it goes on.
   */
  frame?: {
    address: string;
    body?: unknown;
    headers?: Record<string, string>;
    replyAddress?: string;
  };
}

/** true lets the event through; false refuses it (`rejected`); an error body refuses with that body. */
export type BridgeHookResult = boolean | BridgeErrorBody;

/**
 * Sees every bridge event and may refuse it; the client then gets `{type:"err", body}` (for
 * SOCKET_CREATED the socket is closed). A throwing hook refuses with `rejected`.
 */
export type BridgeHook = (event: BridgeEvent) => BridgeHookResult | Promise<BridgeHookResult>;

/** What a hook's result means: through, or refused with this body (false is `rejected`). */
export function hookVerdict(result: BridgeHookResult): true | BridgeErrorBody {
  return result === true ? true : result === false ? 'rejected' : result;
}
