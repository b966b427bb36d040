import { randomUUID } from 'node:crypto';
import type { ClusterManager } from '../cluster/types.js';
import { nodeOfReplyAddress, REPLY_PREFIX } from './address.js';
import {
  type BusLogger,
  type BusObserver,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type EventBusOptions,
  silentLogger,
} from './bus-options.js';
import { CodecRegistry } from './codecs.js';
import { deliverTo, encodeEnvelope, type Envelope, fromWire, toWire, trafficKind } from './envelope.js';
import { EventBusError, ReplyException, ReplyFailure } from './failures.js';
import { LocalConsumers } from './local-consumers.js';
import { PeerLiveness } from './peer-liveness.js';
import { Replies, timeRequest } from './replies.js';
import type { NodeTransport, PeerAddress, WireMessage } from './transport.js';
import type { DeliveryOptions, EventBus, Handler, Message, MessageConsumer } from './types.js';

export {
  type BusLogger,
  type BusObserver,
  type BusTrafficKind,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type EventBusOptions,
} from './bus-options.js';

/**
 * The event bus: Vert.x semantics on one node, and across nodes through a ClusterManager
 * (who subscribes where) and a NodeTransport (bytes between nodes).
 *
 * This class routes (send, publish, request; messages from and refused by other nodes); the
 * consumers on this node are LocalConsumers, request/reply bookkeeping is Replies, and which
 * peers are skipped or probed is PeerLiveness.
 */
export class ClusteredEventBus implements EventBus {
  readonly nodeId: string;
  readonly codecs = new CodecRegistry();
  private readonly cluster: ClusterManager;
  private readonly transport: NodeTransport | undefined;
  private readonly defaultTimeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly log: BusLogger;
  private readonly observer: BusObserver | undefined;

  private readonly consumers: LocalConsumers;
  private readonly replies: Replies;
  private readonly peers: PeerLiveness;
  private readonly roundRobin = new Map<string, number>();
  private closed = false;
  private offNodeLeft: (() => void) | undefined;
  private started = false;

  constructor(options: EventBusOptions) {
    this.cluster = options.cluster;
    this.transport = options.transport;
    this.nodeId = options.nodeId ?? randomUUID();
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.log = options.logger ?? silentLogger;
    this.observer = options.observer;
    this.replies = new Replies(this, this.nodeId, this.cluster, this.transport, this.observer);
    this.consumers = new LocalConsumers(this.cluster, this.replies, this.log, this.roundRobin);
    this.peers = new PeerLiveness(
      this.cluster,
      this.transport,
      options.unreachableBackoffMs ?? 1_000,
      this.log,
    );
  }

  /** Starts the transport and joins the cluster. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    let where = { host: '127.0.0.1', port: 0 };
    if (this.transport) {
      where = await this.transport.start({
        onMessage: (from, message) => this.onRemoteMessage(from, message),
        onUndeliverable: (peer, message, reason) => this.onUndeliverable(peer, message, reason),
        onPeerLost: (nodeId, reason) => {
          this.replies.failRequestsTo(nodeId, reason);
          this.peers.checkPeerGone(nodeId);
        },
      });
    }
    this.offNodeLeft = this.cluster.on('nodeLeft', (nodeId) => {
      this.transport?.forget(nodeId);
      this.replies.failRequestsTo(nodeId, `node ${nodeId} left the cluster`);
      this.peers.forget(nodeId);
    });
    await this.cluster.join({ nodeId: this.nodeId, host: where.host, port: where.port });
  }

  consumer<T = unknown>(address: string, handler: Handler<T>): MessageConsumer {
    this.assertOpen();
    return this.consumers.register(address, handler as Handler<unknown>, false);
  }

  localConsumer<T = unknown>(address: string, handler: Handler<T>): MessageConsumer {
    this.assertOpen();
    return this.consumers.register(address, handler as Handler<unknown>, true);
  }

  send(address: string, body: unknown, options: DeliveryOptions = {}): void {
    const envelope = this.prepare(address, body, options, true, undefined);
    this.routePointToPoint(envelope, scopeOf(options), new Set());
  }

  publish(address: string, body: unknown, options: DeliveryOptions = {}): void {
    const envelope = this.prepare(address, body, options, false, undefined);
    this.consumers.deliver(envelope, true);
    if (options.localOnly || !this.transport) return;
    const wire = toWire(envelope);
    for (const nodeId of this.cluster.subscribers(address)) {
      if (nodeId === this.nodeId) continue;
      const peer = this.cluster.node(nodeId);
      if (peer && !this.peers.isUnreachable(nodeId)) deliverTo(this.transport, this.observer, peer, wire);
    }
  }

  request<R = unknown>(address: string, body: unknown, options: DeliveryOptions = {}): Promise<Message<R>> {
    const timeout = this.checkTimeout(options.timeout);
    const replyAddress = this.replies.nextReplyAddress();
    const envelope = this.prepare(address, body, options, true, replyAddress);
    const promise = this.replies.expect<R>(replyAddress, address, timeout);
    this.routePointToPoint(envelope, scopeOf(options), new Set());
    if (this.observer) timeRequest(promise, this.observer);
    return promise;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.replies.failAll();
    this.consumers.close();
    this.peers.close();
    this.offNodeLeft?.();
    await this.cluster.leave();
    await this.transport?.close();
  }

  /**
   * Calls `tap` once for every publish to an address starting with `prefix` that this node hands
   * to its consumers (from any node, localOnly ones included), after them. One tap per bus.
   */
  tapPublishes(prefix: string, tap: (message: Message<unknown>) => void): void {
    this.consumers.tapPublishes(prefix, tap);
  }

  /** Consumers registered on this node, by address (for health and metrics). */
  localHandlerCount(address?: string): number {
    return this.consumers.count(address);
  }

  // --- routing ----------------------------------------------------------------------------

  private prepare(
    address: string,
    body: unknown,
    options: DeliveryOptions,
    send: boolean,
    replyAddress: string | undefined,
  ): Envelope {
    this.assertOpen();
    return encodeEnvelope(this.codecs, this.maxBodyBytes, address, body, options, send, replyAddress);
  }

  private checkTimeout(timeout: number | undefined): number {
    if (timeout === undefined) return this.defaultTimeoutMs;
    if (!Number.isFinite(timeout) || timeout < 1) {
      throw new EventBusError('INVALID_OPTIONS', `timeout must be at least 1 ms, got ${timeout}`);
    }
    return timeout;
  }

  private routePointToPoint(envelope: Envelope, scope: Scope, exclude: Set<string>): void {
    if (envelope.address.startsWith(REPLY_PREFIX)) {
      this.routeReply(envelope);
      return;
    }
    const target = this.pickTarget(envelope.address, scope, exclude);
    const pending = envelope.replyAddress ? this.replies.get(envelope.replyAddress) : undefined;
    if (target === undefined) {
      if (envelope.replyAddress)
        this.replies.fail(envelope.replyAddress, ReplyException.noHandlers(envelope.address));
      return;
    }
    if (target === this.nodeId) {
      if (pending) pending.targetNode = undefined;
      this.consumers.deliver(envelope, true);
      return;
    }
    const peer = this.cluster.node(target);
    if (!peer || !this.transport) {
      exclude.add(target);
      this.routePointToPoint(envelope, scope, exclude);
      return;
    }
    if (pending) pending.targetNode = target;
    deliverTo(this.transport, this.observer, peer, toWire(envelope));
  }

  /** Round-robin over the nodes that have a consumer, this node included (see Scope). */
  private pickTarget(address: string, scope: Scope, exclude: Set<string>): string | undefined {
    const candidates: string[] = [];
    if (this.consumers.has(address) && !exclude.has(this.nodeId)) {
      if (scope === 'preferLocal') return this.nodeId;
      candidates.push(this.nodeId);
    }
    if (scope !== 'local' && this.transport) {
      for (const nodeId of this.cluster.subscribers(address)) {
        if (nodeId === this.nodeId || exclude.has(nodeId) || this.peers.isUnreachable(nodeId)) continue;
        candidates.push(nodeId);
      }
    }
    if (candidates.length === 0) return undefined;
    if (candidates.length === 1) return candidates[0];
    const n = this.roundRobin.get(address) ?? 0;
    this.roundRobin.set(address, (n + 1) % 1_000_000_007);
    return candidates[n % candidates.length];
  }

  private routeReply(envelope: Envelope): void {
    const owner = nodeOfReplyAddress(envelope.address);
    if (owner === this.nodeId) {
      this.replies.complete(envelope, undefined);
      return;
    }
    const peer = owner === undefined ? undefined : this.cluster.node(owner);
    if (!peer || !this.transport) {
      this.log.debug({ address: envelope.address }, 'reply dropped: requesting node is gone');
      return;
    }
    deliverTo(this.transport, this.observer, peer, toWire(envelope));
  }

  private onUndeliverable(peer: PeerAddress, message: WireMessage, reason: string): void {
    this.peers.markUnreachable(peer.nodeId);
    if (!message.send || message.address.startsWith(REPLY_PREFIX)) {
      this.log.debug({ node: peer.nodeId, address: message.address, reason }, 'message dropped');
      return;
    }
    // Nothing reached the peer, so another consumer may take it without risk of a duplicate.
    const envelope = fromWire(this.codecs, message);
    if (!envelope) return;
    this.routePointToPoint(envelope, 'cluster', new Set([peer.nodeId]));
  }

  // --- inbound ----------------------------------------------------------------------------

  private onRemoteMessage(fromNodeId: string, message: WireMessage): void {
    this.observer?.inbound(trafficKind(message), message.body.length);
    const envelope = fromWire(this.codecs, message);
    if (!envelope) {
      this.log.warn({ from: fromNodeId, codec: message.codec }, 'message with unknown codec dropped');
      return;
    }
    if (message.address.startsWith(REPLY_PREFIX)) {
      if (nodeOfReplyAddress(message.address) === this.nodeId) {
        this.replies.complete(envelope, message.failure);
      }
      return;
    }
    const delivered = this.consumers.deliver(envelope, false);
    if (!delivered && envelope.send && envelope.replyAddress) {
      // The consumer left between routing and arrival: tell the requester now, not at its timeout.
      this.replies.sendFailure(
        envelope.replyAddress,
        'NO_HANDLERS',
        -1,
        `No handlers for address ${envelope.address}`,
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new EventBusError('CLOSED', 'the event bus is closed');
  }
}

export { ReplyFailure };

/** Where a send or request may go: this node only, this node first, or any node alike. */
type Scope = 'local' | 'preferLocal' | 'cluster';

function scopeOf(options: DeliveryOptions): Scope {
  if (options.localOnly === true) return 'local';
  return options.preferLocal === true ? 'preferLocal' : 'cluster';
}
