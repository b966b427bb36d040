import type { ClusterManager } from '../cluster/types.js';
import type { ReplyFailureType } from './failures.js';
import type { NodeTransport } from './transport.js';

export interface EventBusOptions {
  cluster: ClusterManager;
  /** Needed when the cluster has other nodes; standalone buses run without one. */
  transport?: NodeTransport;
  nodeId?: string;
  /** Default request timeout (ms). Vert.x's default: 30 s. */
  defaultTimeoutMs?: number;
  /** Largest encoded body accepted by send/publish/request/reply. */
  maxBodyBytes?: number;
  /** How long a node that refused a connection is skipped by routing. */
  unreachableBackoffMs?: number;
  logger?: BusLogger;
  /** Told about node-to-node traffic and request latency (metrics). */
  observer?: BusObserver;
}

export type BusTrafficKind = 'send' | 'publish' | 'reply';

/** What metrics see of the bus; the bus knows nothing of how they are exported. */
export interface BusObserver {
  /** A message handed to the transport for another node. */
  outbound(kind: BusTrafficKind, bytes: number): void;
  /** A message that arrived from another node. */
  inbound(kind: BusTrafficKind, bytes: number): void;
  /** A request settled on this node, `seconds` after it was made. */
  requestSettled(seconds: number, outcome: 'ok' | ReplyFailureType): void;
}

export interface BusLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export const silentLogger: BusLogger = { warn: () => {}, info: () => {}, debug: () => {} };

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
