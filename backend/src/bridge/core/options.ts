import { AddressLimits } from '../limits.js';
import type { BridgeEventType, BridgeHook } from './hook.js';
import { type CompiledPermission, compilePermissions, type PermittedOptions } from './permissions.js';

/** What metrics see of bridge sockets. */
export interface BridgeObserver {
  frameIn(): void;
  /** `count` frames written to one socket at once (counted per flush, not per frame: hot path). */
  framesOut(count: number): void;
}

/** Where the bridges report failures nobody waits for (a session that could not open or close). */
export interface BridgeLogger {
  warn(obj: object, msg: string): void;
}

const noLog: BridgeLogger = { warn: () => {} };

export interface BridgeConfig {
  inbound: PermittedOptions[];
  outbound: PermittedOptions[];
  hook?: BridgeHook;
  /**
   * The events the hook is called for; default all, as in Vert.x. A hook that has nothing to say
   * on RECEIVE should leave it out: that call is made once per delivery, the fan-out's hot path.
   */
  hookEvents?: readonly BridgeEventType[];
  maxAddressLength?: number;
  maxHandlers?: number;
  replyTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxFrameBytes?: number;
  ratePerSec?: number;
  rateBurst?: number;
  maxBufferedBytes?: number;
  /** Requests waiting for a reply per socket (WebSocket, SockJS) or gRPC connection. */
  maxInflight?: number;
  /** Per client IP address, over every bridge of the node; without both, no per-address limit. */
  maxInflightPerAddress?: number;
  maxConnectionsPerAddress?: number;
  /**
   * Addresses whose client sends and requests go to a consumer on this node when it has one, not
   * round-robin over the cluster (DeliveryOptions.preferLocal): services every node runs alike.
   */
  preferLocal?: readonly string[];
  observer?: BridgeObserver;
  logger?: BridgeLogger;
}

export interface BridgeOptions {
  inbound: CompiledPermission[];
  outbound: CompiledPermission[];
  /** Outbound entries without `match`: what may be registered (matches are checked per message). */
  outboundByAddress: CompiledPermission[];
  hook: BridgeHook | undefined;
  /** undefined: every event. */
  hookEvents: ReadonlySet<BridgeEventType> | undefined;
  maxAddressLength: number;
  maxHandlers: number;
  replyTimeoutMs: number;
  idleTimeoutMs: number;
  maxFrameBytes: number;
  ratePerSec: number;
  rateBurst: number;
  maxBufferedBytes: number;
  maxInflight: number;
  /** Shared by every bridge of the node. */
  addressLimits: AddressLimits | undefined;
  preferLocal: ReadonlySet<string>;
  observer: BridgeObserver | undefined;
  log: BridgeLogger;
}

/** The hook, if it is called for events of this type (BridgeConfig.hookEvents). */
export function hookFor(options: BridgeOptions, type: BridgeEventType): BridgeHook | undefined {
  return options.hook && (options.hookEvents?.has(type) ?? true) ? options.hook : undefined;
}

/** Vert.x's defaults unless docs/protocol.md says why not. */
export function bridgeOptions(config: BridgeConfig): BridgeOptions {
  const outbound = compilePermissions(config.outbound);
  return {
    inbound: compilePermissions(config.inbound),
    outbound,
    outboundByAddress: outbound.map(({ match: _match, ...rest }) => rest),
    hook: config.hook,
    hookEvents: config.hookEvents ? new Set(config.hookEvents) : undefined,
    maxAddressLength: config.maxAddressLength ?? 200,
    maxHandlers: config.maxHandlers ?? 1_000,
    replyTimeoutMs: config.replyTimeoutMs ?? 30_000,
    idleTimeoutMs: config.idleTimeoutMs ?? 10_000,
    maxFrameBytes: config.maxFrameBytes ?? 64 * 1024,
    ratePerSec: config.ratePerSec ?? 200,
    rateBurst: config.rateBurst ?? (config.ratePerSec ?? 200) * 2,
    maxBufferedBytes: config.maxBufferedBytes ?? 4 * 1024 * 1024,
    maxInflight: config.maxInflight ?? 16,
    preferLocal: new Set(config.preferLocal ?? []),
    addressLimits:
      config.maxInflightPerAddress !== undefined && config.maxConnectionsPerAddress !== undefined
        ? new AddressLimits({
            maxInflightPerAddress: config.maxInflightPerAddress,
            maxConnectionsPerAddress: config.maxConnectionsPerAddress,
          })
        : undefined,
    observer: config.observer,
    log: config.logger ?? noLog,
  };
}

/** Delivery options for a client's send or request to `address` (BridgeConfig.preferLocal). */
export function routingFor(options: BridgeOptions, address: string): { preferLocal?: true } {
  return options.preferLocal.has(address) ? { preferLocal: true } : {};
}
