import { status } from '@grpc/grpc-js';
import { type AddressLimits, ipOfPeer, TokenBucket } from '../limits.js';
import { GrpcError } from './status.js';

export interface GrpcAdmissionConfig {
  /** RPCs started per second per connection (unary calls and streams alike), bursts of twice. */
  ratePerSec: number;
  rateBurst: number;
  /** Unary and client-streaming calls waiting for their answer, per connection. */
  maxInflight: number;
  /** Server streams (Subscribe, Join, Download) open at once, per connection. */
  maxStreams: number;
  addressLimits: AddressLimits | undefined;
}

interface Peer {
  ip: string;
  bucket: TokenBucket;
  inflight: number;
  streams: number;
  lastUsed: number;
  /** Whether this peer holds a connection slot of its address. */
  slot: boolean;
}

/** A peer idle this long gives its connection slot back (its rate bucket starts afresh). */
const IDLE_MS = 30_000;

/**
 * What a gRPC connection may start: every RPC takes a token of its connection's rate; unary
 * calls count against the connection's and the address's in-flight limits until answered;
 * streams against the connection's stream limit. A connection is the peer `ip:port` grpc-js
 * reports; connections that made a call in the last 30 s count against the address's cap.
 * Every refusal is RESOURCE_EXHAUSTED with the limit in its message.
 */
export class GrpcAdmission {
  private readonly peers = new Map<string, Peer>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly config: GrpcAdmissionConfig) {
    this.sweeper = setInterval(() => this.sweep(), IDLE_MS / 3);
    this.sweeper.unref();
  }

  /** Admits a unary call; the returned function ends it. */
  call(peerId: string): () => void {
    const peer = this.admit(peerId);
    if (peer.inflight >= this.config.maxInflight) {
      throw exhausted(
        `too_many_requests: at most ${this.config.maxInflight} calls per connection wait for an answer`,
      );
    }
    const limits = this.config.addressLimits;
    if (limits && !limits.startRequest(peer.ip)) {
      throw exhausted(
        `too_many_requests: at most ${limits.config.maxInflightPerAddress} requests per client address wait for an answer`,
      );
    }
    peer.inflight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      peer.inflight--;
      peer.lastUsed = Date.now();
      limits?.endRequest(peer.ip);
    };
  }

  /** Admits a server stream; the returned function ends it. */
  stream(peerId: string): () => void {
    const peer = this.admit(peerId);
    if (peer.streams >= this.config.maxStreams) {
      throw exhausted(`too_many_streams: at most ${this.config.maxStreams} streams per connection`);
    }
    peer.streams++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      peer.streams--;
      peer.lastUsed = Date.now();
    };
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private admit(peerId: string): Peer {
    let peer = this.peers.get(peerId);
    if (!peer) {
      const ip = ipOfPeer(peerId);
      const limits = this.config.addressLimits;
      if (limits && !limits.openConnection(ip)) {
        throw exhausted(
          `too_many_connections: at most ${limits.config.maxConnectionsPerAddress} connections per client address`,
        );
      }
      peer = {
        ip,
        bucket: new TokenBucket(this.config.ratePerSec, this.config.rateBurst),
        inflight: 0,
        streams: 0,
        lastUsed: Date.now(),
        slot: limits !== undefined,
      };
      this.peers.set(peerId, peer);
    }
    peer.lastUsed = Date.now();
    if (!peer.bucket.take()) {
      throw exhausted(`rate_limited: at most ${this.config.ratePerSec} calls per second per connection`);
    }
    return peer;
  }

  private sweep(): void {
    const idleSince = Date.now() - IDLE_MS;
    for (const [id, peer] of this.peers) {
      if (peer.inflight > 0 || peer.streams > 0 || peer.lastUsed > idleSince) continue;
      this.peers.delete(id);
      if (peer.slot) this.config.addressLimits?.closeConnection(peer.ip);
    }
  }
}

function exhausted(message: string): GrpcError {
  return new GrpcError(status.RESOURCE_EXHAUSTED, message);
}
