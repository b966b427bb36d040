import { randomUUID } from 'node:crypto';
import type { ClusterManager } from '../cluster/types.js';
import { nodeOfReplyAddress, REPLY_PREFIX, replyAddressFor, validateAddress } from './address.js';
import { CodecRegistry, type MessageCodec } from './codecs.js';
import { EventBusError, ReplyException, ReplyFailure, type ReplyFailureType } from './failures.js';
import type { NodeTransport, PeerAddress, WireFailure, WireMessage } from './transport.js';
import type { DeliveryOptions, EventBus, Handler, Headers, Message, MessageConsumer } from './types.js';

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

const silentLogger: BusLogger = { warn: () => {}, info: () => {}, debug: () => {} };

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

interface Registration {
  readonly address: string;
  readonly localOnly: boolean;
  readonly handler: Handler<unknown>;
  registered: boolean;
}

interface PendingReply {
  resolve(message: Message<unknown>): void;
  reject(err: ReplyException): void;
  timer: NodeJS.Timeout;
  address: string;
  /** The node the request went to, so a lost link fails it at once. */
  targetNode: string | undefined;
}

/** An inbound message before it is handed to handlers: decoded lazily, once per node. */
interface Envelope {
  address: string;
  send: boolean;
  replyAddress: string | undefined;
  headers: Headers;
  codec: MessageCodec;
  bytes: Buffer;
  decoded?: { value: unknown };
  /** A publish's one Message, shared by all its local consumers (nothing in it answers). */
  shared?: Message<unknown>;
}

/**
 * The event bus: Vert.x semantics on one node, and across nodes through a ClusterManager
 * (who subscribes where) and a NodeTransport (bytes between nodes).
 */
/** When a lost peer's port that answered is probed again (ms after the previous probe). */
const PEER_PROBE_AGAIN_MS = [250, 1_000];

export class ClusteredEventBus implements EventBus {
  readonly nodeId: string;
  readonly codecs = new CodecRegistry();
  private readonly cluster: ClusterManager;
  private readonly transport: NodeTransport | undefined;
  private readonly defaultTimeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly unreachableBackoffMs: number;
  private readonly log: BusLogger;
  private readonly observer: BusObserver | undefined;

  private readonly registrations = new Map<string, Registration[]>();
  /** Addresses with at least one cluster-visible consumer here, and the registry write in flight. */
  private readonly announced = new Map<string, Promise<void>>();
  private readonly roundRobin = new Map<string, number>();
  private readonly pending = new Map<string, PendingReply>();
  private readonly unreachableUntil = new Map<string, number>();
  private replySeq = 0;
  private closed = false;
  private offNodeLeft: (() => void) | undefined;
  private started = false;
  private publishTap: { prefix: string; tap: (message: Message<unknown>) => void } | undefined;

  constructor(options: EventBusOptions) {
    this.cluster = options.cluster;
    this.transport = options.transport;
    this.nodeId = options.nodeId ?? randomUUID();
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.unreachableBackoffMs = options.unreachableBackoffMs ?? 1_000;
    this.log = options.logger ?? silentLogger;
    this.observer = options.observer;
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
          this.failRequestsTo(nodeId, reason);
          this.checkPeerGone(nodeId);
        },
      });
    }
    this.offNodeLeft = this.cluster.on('nodeLeft', (nodeId) => {
      this.transport?.forget(nodeId);
      this.failRequestsTo(nodeId, `node ${nodeId} left the cluster`);
      this.unreachableUntil.delete(nodeId);
    });
    await this.cluster.join({ nodeId: this.nodeId, host: where.host, port: where.port });
  }

  consumer<T = unknown>(address: string, handler: Handler<T>): MessageConsumer {
    return this.register(address, handler as Handler<unknown>, false);
  }

  localConsumer<T = unknown>(address: string, handler: Handler<T>): MessageConsumer {
    return this.register(address, handler as Handler<unknown>, true);
  }

  send(address: string, body: unknown, options: DeliveryOptions = {}): void {
    const envelope = this.prepare(address, body, options, true, undefined);
    this.routePointToPoint(envelope, options.localOnly === true, new Set());
  }

  publish(address: string, body: unknown, options: DeliveryOptions = {}): void {
    const envelope = this.prepare(address, body, options, false, undefined);
    this.deliverLocally(envelope, true);
    if (options.localOnly || !this.transport) return;
    const wire = toWire(envelope);
    for (const nodeId of this.cluster.subscribers(address)) {
      if (nodeId === this.nodeId) continue;
      const peer = this.cluster.node(nodeId);
      if (peer && !this.isUnreachable(nodeId)) this.deliverTo(peer, wire);
    }
  }

  request<R = unknown>(address: string, body: unknown, options: DeliveryOptions = {}): Promise<Message<R>> {
    const timeout = this.checkTimeout(options.timeout);
    const replyAddress = replyAddressFor(this.nodeId, ++this.replySeq);
    const envelope = this.prepare(address, body, options, true, replyAddress);
    const promise = new Promise<Message<R>>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(replyAddress)) reject(ReplyException.timeout(address, timeout));
      }, timeout);
      timer.unref?.();
      this.pending.set(replyAddress, {
        resolve: resolve as (m: Message<unknown>) => void,
        reject,
        timer,
        address,
        targetNode: undefined,
      });
    });
    this.routePointToPoint(envelope, options.localOnly === true, new Set());
    if (this.observer) this.timeRequest(promise, this.observer);
    return promise;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [replyAddress, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(replyAddress);
      p.reject(new ReplyException('ERROR', -1, 'the event bus was closed'));
    }
    this.registrations.clear();
    this.announced.clear();
    this.offNodeLeft?.();
    await this.cluster.leave();
    await this.transport?.close();
  }

  /**
   * Calls `tap` once for every publish to an address starting with `prefix` that this node hands
   * to its consumers (from any node, localOnly ones included), after them. One tap per bus.
   */
  tapPublishes(prefix: string, tap: (message: Message<unknown>) => void): void {
    this.publishTap = { prefix, tap };
  }

  /** Consumers registered on this node, by address (for health and metrics). */
  localHandlerCount(address?: string): number {
    if (address !== undefined) return this.registrations.get(address)?.length ?? 0;
    let n = 0;
    for (const list of this.registrations.values()) n += list.length;
    return n;
  }

  // --- registration ---------------------------------------------------------------------

  private register(address: string, handler: Handler<unknown>, localOnly: boolean): MessageConsumer {
    this.assertOpen();
    validateAddress(address);
    if (typeof handler !== 'function') {
      throw new EventBusError('INVALID_OPTIONS', 'a consumer needs a handler function');
    }
    const reg: Registration = { address, localOnly, handler, registered: true };
    const list = this.registrations.get(address) ?? [];
    list.push(reg);
    this.registrations.set(address, list);
    const completion = localOnly ? Promise.resolve() : this.announce(address);
    const bus = this;
    return {
      address,
      localOnly,
      get isRegistered() {
        return reg.registered;
      },
      completion,
      unregister: () => bus.unregister(reg),
    };
  }

  private announce(address: string): Promise<void> {
    const existing = this.announced.get(address);
    if (existing) return existing;
    const done = this.cluster.addSubscription(address).catch((err: unknown) => {
      this.announced.delete(address);
      throw err;
    });
    this.announced.set(address, done);
    // Callers may ignore `completion`; a failed registration is logged rather than left unhandled.
    done.catch((err: unknown) => this.log.warn({ address, err: String(err) }, 'registration failed'));
    return done;
  }

  private async unregister(reg: Registration): Promise<void> {
    if (!reg.registered) return;
    reg.registered = false;
    const list = this.registrations.get(reg.address);
    if (!list) return;
    const i = list.indexOf(reg);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.registrations.delete(reg.address);
    const stillVisible = list.some((r) => !r.localOnly);
    if (!reg.localOnly && !stillVisible) {
      const announced = this.announced.get(reg.address);
      this.announced.delete(reg.address);
      await announced?.catch(() => {}); // only waiting for it to settle: announce() logs a failure
      // A consumer registered again while we waited: keep the subscription.
      if (this.registrations.get(reg.address)?.some((r) => !r.localOnly)) return;
      // Callers may ignore the result, as with `completion`: a failure is logged here.
      if (!this.closed)
        await this.cluster.removeSubscription(reg.address).catch((err: unknown) => {
          this.log.warn({ address: reg.address, err: String(err) }, 'unregistration failed');
          throw err;
        });
    }
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
    validateAddress(address);
    const headers = checkHeaders(options.headers);
    const codec = this.codecs.forBody(body, options.codec);
    const bytes = codec.encode(body);
    if (bytes.length > this.maxBodyBytes) {
      throw new EventBusError(
        'MESSAGE_TOO_LARGE',
        `body is ${bytes.length} bytes, the limit is ${this.maxBodyBytes}`,
      );
    }
    return { address, send, replyAddress, headers, codec, bytes };
  }

  private checkTimeout(timeout: number | undefined): number {
    if (timeout === undefined) return this.defaultTimeoutMs;
    if (!Number.isFinite(timeout) || timeout < 1) {
      throw new EventBusError('INVALID_OPTIONS', `timeout must be at least 1 ms, got ${timeout}`);
    }
    return timeout;
  }

  private routePointToPoint(envelope: Envelope, localOnly: boolean, exclude: Set<string>): void {
    if (envelope.address.startsWith(REPLY_PREFIX)) {
      this.routeReply(envelope);
      return;
    }
    const target = this.pickTarget(envelope.address, localOnly, exclude);
    const pending = envelope.replyAddress ? this.pending.get(envelope.replyAddress) : undefined;
    if (target === undefined) {
      if (envelope.replyAddress)
        this.failPending(envelope.replyAddress, ReplyException.noHandlers(envelope.address));
      return;
    }
    if (target === this.nodeId) {
      if (pending) pending.targetNode = undefined;
      this.deliverLocally(envelope, true);
      return;
    }
    const peer = this.cluster.node(target);
    if (!peer || !this.transport) {
      exclude.add(target);
      this.routePointToPoint(envelope, localOnly, exclude);
      return;
    }
    if (pending) pending.targetNode = target;
    this.deliverTo(peer, toWire(envelope));
  }

  /** Round-robin over the nodes that have a consumer, this node included. */
  private pickTarget(address: string, localOnly: boolean, exclude: Set<string>): string | undefined {
    const candidates: string[] = [];
    if (this.registrations.has(address) && !exclude.has(this.nodeId)) candidates.push(this.nodeId);
    if (!localOnly && this.transport) {
      for (const nodeId of this.cluster.subscribers(address)) {
        if (nodeId === this.nodeId || exclude.has(nodeId) || this.isUnreachable(nodeId)) continue;
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
      this.completeReply(envelope, undefined);
      return;
    }
    const peer = owner === undefined ? undefined : this.cluster.node(owner);
    if (!peer || !this.transport) {
      this.log.debug({ address: envelope.address }, 'reply dropped: requesting node is gone');
      return;
    }
    this.deliverTo(peer, toWire(envelope));
  }

  private completeReply(envelope: Envelope, failure: WireFailure | undefined): void {
    const pending = this.pending.get(envelope.address);
    if (!pending) return; // timed out or failed already: at-most-once, the late reply is dropped
    this.pending.delete(envelope.address);
    clearTimeout(pending.timer);
    if (failure) {
      pending.reject(new ReplyException(failure.type, failure.code, failure.message));
    } else {
      pending.resolve(this.toMessage(envelope));
    }
  }

  private failPending(replyAddress: string, err: ReplyException): void {
    const pending = this.pending.get(replyAddress);
    if (!pending) return;
    this.pending.delete(replyAddress);
    clearTimeout(pending.timer);
    pending.reject(err);
  }

  /**
   * A broken link may mean a killed process. If the peer's bus port now refuses connections, the
   * cluster drops it at once instead of when its lease lapses (seconds during which its rooms have
   * no owner); a peer that is only slow or cut off answers, or times out, and goes by its lease.
   * A port that answers is asked again a little later: a dying process may close its links before
   * its listening socket, and the kernel completes handshakes on that socket until it is closed.
   */
  private checkPeerGone(nodeId: string): void {
    const peer = this.cluster.node(nodeId);
    if (this.closed || !peer || !this.transport?.probe) return;
    const probe = this.transport.probe.bind(this.transport);
    void (async () => {
      let verdict: 'refused' | 'answered' | 'unknown' = 'unknown';
      for (const waitMs of [0, ...PEER_PROBE_AGAIN_MS]) {
        if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs).unref());
        const now = this.cluster.node(nodeId);
        // Dropped meanwhile, or back at another address: nothing left to decide.
        if (this.closed || !now || now.host !== peer.host || now.port !== peer.port) return;
        verdict = await probe(peer);
        if (verdict !== 'answered') break;
      }
      if (this.closed) return;
      if (verdict === 'refused') {
        this.cluster.reportUnreachable(
          nodeId,
          `its link closed and ${peer.host}:${peer.port} refuses connections`,
        );
      } else {
        this.log.info(
          { nodeId, probe: verdict },
          'link to a node closed but its bus port did not refuse: it stays until its lease lapses',
        );
      }
    })().catch((err: unknown) => this.log.warn({ nodeId, err: String(err) }, 'could not probe a lost peer'));
  }

  private failRequestsTo(nodeId: string, reason: string): void {
    for (const [replyAddress, p] of this.pending) {
      if (p.targetNode === nodeId) {
        this.failPending(
          replyAddress,
          new ReplyException('ERROR', -1, `${reason} before it replied (address ${p.address})`),
        );
      }
    }
  }

  private isUnreachable(nodeId: string): boolean {
    const until = this.unreachableUntil.get(nodeId);
    if (until === undefined) return false;
    if (Date.now() >= until) {
      this.unreachableUntil.delete(nodeId);
      return false;
    }
    return true;
  }

  private onUndeliverable(peer: PeerAddress, message: WireMessage, reason: string): void {
    this.unreachableUntil.set(peer.nodeId, Date.now() + this.unreachableBackoffMs);
    if (!message.send || message.address.startsWith(REPLY_PREFIX)) {
      this.log.debug({ node: peer.nodeId, address: message.address, reason }, 'message dropped');
      return;
    }
    // Nothing reached the peer, so another consumer may take it without risk of a duplicate.
    const envelope = this.fromWire(message);
    if (!envelope) return;
    this.routePointToPoint(envelope, false, new Set([peer.nodeId]));
  }

  // --- inbound ----------------------------------------------------------------------------

  private onRemoteMessage(fromNodeId: string, message: WireMessage): void {
    this.observer?.inbound(trafficKind(message), message.body.length);
    const envelope = this.fromWire(message);
    if (!envelope) {
      this.log.warn({ from: fromNodeId, codec: message.codec }, 'message with unknown codec dropped');
      return;
    }
    if (message.address.startsWith(REPLY_PREFIX)) {
      if (nodeOfReplyAddress(message.address) === this.nodeId) {
        this.completeReply(envelope, message.failure);
      }
      return;
    }
    const delivered = this.deliverLocally(envelope, false);
    if (!delivered && envelope.send && envelope.replyAddress) {
      // The consumer left between routing and arrival: tell the requester now, not at its timeout.
      this.sendFailure(
        envelope.replyAddress,
        'NO_HANDLERS',
        -1,
        `No handlers for address ${envelope.address}`,
      );
    }
  }

  private fromWire(message: WireMessage): Envelope | undefined {
    let codec: MessageCodec;
    try {
      codec = this.codecs.get(message.codec);
    } catch {
      return undefined;
    }
    return {
      address: message.address,
      send: message.send,
      replyAddress: message.replyAddress,
      headers: message.headers ?? {},
      codec,
      bytes: message.body,
    };
  }

  /**
   * Hands a message to local consumers: one (round-robin) for send, all for publish.
   * Delivery is asynchronous and FIFO, as in Vert.x; remote messages skip local-only consumers.
   */
  private deliverLocally(envelope: Envelope, includeLocalOnly: boolean): boolean {
    const list = this.registrations.get(envelope.address);
    if (!list || list.length === 0) return false;
    const eligible = includeLocalOnly ? list : list.filter((r) => !r.localOnly);
    if (eligible.length === 0) return false;
    if (envelope.send) {
      const n = this.roundRobin.get(`local:${envelope.address}`) ?? 0;
      this.roundRobin.set(`local:${envelope.address}`, (n + 1) % 1_000_000_007);
      const reg = eligible[n % eligible.length]!;
      queueMicrotask(() => this.invoke(reg, envelope));
    } else {
      const targets = [...eligible];
      const tap = this.publishTap?.prefix && envelope.address.startsWith(this.publishTap.prefix);
      queueMicrotask(() => {
        for (const reg of targets) this.invoke(reg, envelope);
        if (tap) this.tapPublish(envelope);
      });
    }
    return true;
  }

  private tapPublish(envelope: Envelope): void {
    try {
      this.publishTap?.tap((envelope.shared ??= this.toMessage(envelope)));
    } catch (err) {
      this.log.warn({ address: envelope.address, err: String(err) }, 'publish tap failed');
    }
  }

  private invoke(reg: Registration, envelope: Envelope): void {
    if (!reg.registered) {
      if (envelope.send && envelope.replyAddress) {
        this.sendFailure(
          envelope.replyAddress,
          'NO_HANDLERS',
          -1,
          `No handlers for address ${envelope.address}`,
        );
      }
      return;
    }
    let message: Message<unknown>;
    try {
      // A publish expects no reply: its thousand consumers can share one Message object.
      message = envelope.replyAddress
        ? this.toMessage(envelope)
        : (envelope.shared ??= this.toMessage(envelope));
    } catch (err) {
      this.log.warn({ address: envelope.address, err: String(err) }, 'undecodable message dropped');
      if (envelope.replyAddress) {
        this.sendFailure(
          envelope.replyAddress,
          'ERROR',
          -1,
          `could not decode the body: ${(err as Error).message}`,
        );
      }
      return;
    }
    try {
      const result = reg.handler(message);
      if (result && typeof (result as Promise<void>).then === 'function') {
        (result as Promise<void>).then(undefined, (err: unknown) => this.consumerFailed(envelope, err));
      }
    } catch (err) {
      this.consumerFailed(envelope, err);
    }
  }

  /** Not a closure per delivery: this runs once per consumer of every publish. */
  private consumerFailed(envelope: Envelope, err: unknown): void {
    this.log.warn({ address: envelope.address, err: String(err) }, 'consumer failed');
    if (envelope.replyAddress) {
      this.sendFailure(envelope.replyAddress, 'RECIPIENT_FAILURE', -1, errorText(err));
    }
  }

  private toMessage(envelope: Envelope): Message<unknown> {
    if (!envelope.decoded) envelope.decoded = { value: envelope.codec.decode(envelope.bytes) };
    const body = envelope.decoded.value;
    const bus = this;
    let answered = false;
    const answer = (): string => {
      if (!envelope.replyAddress) {
        throw new EventBusError('INVALID_OPTIONS', 'this message expects no reply');
      }
      if (answered) throw new EventBusError('INVALID_OPTIONS', 'this message was answered already');
      answered = true;
      return envelope.replyAddress;
    };
    return {
      address: envelope.address,
      body,
      headers: envelope.headers,
      replyAddress: envelope.replyAddress,
      isSend: envelope.send,
      reply(replyBody: unknown, options?: DeliveryOptions) {
        if (!envelope.replyAddress) return; // as in Vert.x, replying to a publish is a no-op
        bus.send(answer(), replyBody, options);
      },
      replyAndRequest<R>(replyBody: unknown, options?: DeliveryOptions) {
        return bus.request<R>(answer(), replyBody, options);
      },
      fail(failureCode: number, text: string) {
        if (!envelope.replyAddress) return;
        bus.sendFailure(answer(), 'RECIPIENT_FAILURE', failureCode, text);
      },
    };
  }

  private sendFailure(replyAddress: string, type: ReplyFailureType, code: number, text: string): void {
    const failure: WireFailure = { type, code, message: text };
    const owner = nodeOfReplyAddress(replyAddress);
    if (owner === this.nodeId) {
      const pending = this.pending.get(replyAddress);
      if (pending) {
        queueMicrotask(() => this.failPending(replyAddress, new ReplyException(type, code, text)));
      }
      return;
    }
    const peer = owner === undefined ? undefined : this.cluster.node(owner);
    if (!peer || !this.transport) return;
    this.deliverTo(peer, {
      address: replyAddress,
      send: true,
      codec: 'json',
      body: Buffer.from('null'),
      failure,
    });
  }

  private deliverTo(peer: PeerAddress, wire: WireMessage): void {
    this.observer?.outbound(trafficKind(wire), wire.body.length);
    this.transport!.deliver(peer, wire);
  }

  private timeRequest(promise: Promise<unknown>, observer: BusObserver): void {
    const t0 = performance.now();
    const seconds = (): number => (performance.now() - t0) / 1000;
    promise.then(
      () => observer.requestSettled(seconds(), 'ok'),
      (err: unknown) =>
        observer.requestSettled(seconds(), err instanceof ReplyException ? err.failureType : 'ERROR'),
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new EventBusError('CLOSED', 'the event bus is closed');
  }
}

function toWire(envelope: Envelope): WireMessage {
  const wire: WireMessage = {
    address: envelope.address,
    send: envelope.send,
    codec: envelope.codec.name,
    body: envelope.bytes,
  };
  if (envelope.replyAddress) wire.replyAddress = envelope.replyAddress;
  if (Object.keys(envelope.headers).length > 0) wire.headers = envelope.headers;
  return wire;
}

function trafficKind(wire: WireMessage): BusTrafficKind {
  if (wire.address.startsWith(REPLY_PREFIX)) return 'reply';
  return wire.send ? 'send' : 'publish';
}

function checkHeaders(headers: Headers | undefined): Headers {
  if (headers === undefined) return {};
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new EventBusError('INVALID_OPTIONS', 'headers must be an object of strings');
  }
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') {
      throw new EventBusError('INVALID_OPTIONS', `header "${k}" must be a string`);
    }
  }
  return headers;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export { ReplyFailure };
