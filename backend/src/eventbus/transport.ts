import type { Headers } from './types.js';

/** A failure travelling back to a requester. */
export interface WireFailure {
  type: 'TIMEOUT' | 'NO_HANDLERS' | 'RECIPIENT_FAILURE' | 'ERROR';
  code: number;
  message: string;
}

/** One bus message as it crosses between nodes. */
export interface WireMessage {
  address: string;
  /** Point-to-point (send/request/reply) rather than publish. */
  send: boolean;
  replyAddress?: string;
  headers?: Headers;
  codec: string;
  body: Buffer;
  failure?: WireFailure;
}

export interface PeerAddress {
  readonly nodeId: string;
  readonly host: string;
  readonly port: number;
}

export interface TransportHandlers {
  /** A message from another node. */
  onMessage(fromNodeId: string, message: WireMessage): void;
  /** A message could not be handed to the peer (connect failed, link lost before writing). */
  onUndeliverable(peer: PeerAddress, message: WireMessage, reason: string): void;
  /** The link to a peer broke: whatever was written and not answered may be lost. */
  onPeerLost(nodeId: string, reason: string): void;
}

/** Moves bus messages between nodes. The bus routes; the transport only carries. */
export interface NodeTransport {
  start(handlers: TransportHandlers): Promise<{ host: string; port: number }>;
  deliver(peer: PeerAddress, message: WireMessage): void;
  /** Drops the link to a node that left, failing what is still queued for it. */
  forget(nodeId: string): void;
  /**
   * Whether the peer's process is gone: 'refused' when its host answered that nothing listens on
   * its port (a killed process), 'answered' when something does, 'unknown' otherwise (a timeout,
   * an unreachable host: maybe only the network). Optional: without it peers go by lease only.
   */
  probe?(peer: PeerAddress): Promise<'refused' | 'answered' | 'unknown'>;
  close(): Promise<void>;
}
