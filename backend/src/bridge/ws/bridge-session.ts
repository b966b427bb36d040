import { randomUUID } from 'node:crypto';
import { isReservedAddress, newReplyAlias, publicHeaders } from '../delivery.js';
import type { Principal } from '../../auth/principal.js';
import { EventBusError, ReplyException } from '../../eventbus/failures.js';
import type { EventBus, Message, MessageConsumer } from '../../eventbus/types.js';
import {
  CONTROL_ADDRESS,
  errFrame,
  asVertxReads,
  inboundFrame,
  KNOWN_TYPES,
  MAX_CLIENT_REPLY_ADDRESS,
  PONG_FRAME,
  recFrame,
  type RefusedFrame,
  refusedFrame,
  replyFailureFrame,
  vertxString,
} from './frames.js';
import {
  type BridgeEvent,
  type BridgeEventType,
  type BridgeHookResult,
  type BridgeSocketInfo,
  hookVerdict,
} from '../core/hook.js';
import { stampHeaders } from '../core/headers.js';
import { type BridgeObserver, type BridgeOptions, hookFor } from '../core/options.js';
import { OutboundFrame } from './outbound-frame.js';
import { checkPermission, type PermissionVerdict } from '../core/permissions.js';
import type { BridgeErrorBody } from '../core/refusals.js';

/** What a session needs from its socket: raw WebSocket and SockJS both provide it. */
export interface BridgeTransport {
  send(text: string): void;
  /**
   * Writes `first`, then `more` if any, at once (one syscall where the socket allows it). Returns false once
   * the socket holds more than its high-water mark unwritten (as `Writable.write`), so that
   * `bufferedAmount` is asked only then. Optional: without it each frame goes through `send`.
   */
  sendFrames?(first: OutboundFrame, more: readonly OutboundFrame[] | undefined): boolean;
  /** Bytes queued and not yet written to the network. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
  /**
   * Switchboard's additions (pong frames, `__sb.control` hello and reconnect frames) go only to
   * raw WebSocket clients; Vert.x's own SockJS client would log them as unhandled.
   */
  readonly extensions: boolean;
}

export const CloseCode = {
  NORMAL: 1000,
  POLICY: 1008,
  TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  IDLE: 4000,
} as const;

// One serialization per published message, shared by every socket that receives it unchanged.
const frameCache = new WeakMap<object, { address: string; frame: OutboundFrame }>();

/**
 * Sessions with frames waiting to be written. Frames queue per session and leave once per event
 * loop turn (setImmediate, after the I/O callbacks of the turn): every message published in the
 * same turn reaches a socket in one write, and one syscall per frame per socket becomes one per
 * socket per turn under load, with no added wait when idle.
 */
let unflushed: (BridgeSession | undefined)[] = [];
let unflushedCount = 0;
// The queue of the previous turn, kept with its capacity: nothing on the fan-out path allocates
// per delivery. (An array per socket per turn was pretenured by V8 once the connections of a
// join wave kept theirs, and then every delivery allocated in the old generation: a major GC
// every ~2 s at 40k deliveries/s, about a tenth of the node's CPU.)
let spareUnflushed: (BridgeSession | undefined)[] = [];
let flushScheduled = false;

function queueFlush(session: BridgeSession): void {
  unflushed[unflushedCount++] = session;
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}

function flushAll(): void {
  flushScheduled = false;
  const sessions = unflushed;
  const count = unflushedCount;
  unflushed = spareUnflushed;
  unflushedCount = 0;
  // Frames are counted for metrics once per turn and observer, not per socket: this is the loop
  // that runs once per delivery under fan-out.
  let observer: BridgeObserver | undefined;
  let frames = 0;
  for (let i = 0; i < count; i++) {
    const session = sessions[i]!;
    sessions[i] = undefined;
    const next = session.observer;
    if (next !== observer) {
      if (frames > 0) observer?.framesOut(frames);
      [observer, frames] = [next, 0];
    }
    frames += session.flush();
  }
  if (frames > 0) observer?.framesOut(frames);
  spareUnflushed = sessions;
}

const PING_TEXT = '{"type":"ping"}';
/** Framed once for every socket. */
const PONG = new OutboundFrame(PONG_FRAME);

/**
 * One client connection speaking the Vert.x bridge protocol: frames in, bus calls out, and `rec`
 * frames back for registered addresses and replies. Knows nothing of chat; policies come as hooks.
 */
export class BridgeSession {
  readonly info: BridgeSocketInfo;
  private readonly consumers = new Map<string, MessageConsumer>();
  /**
   * Bus messages handed to the client that expect its reply, by the unguessable alias the client
   * got instead of the bus's reply address: only this socket can answer them.
   */
  private readonly awaitingClientReply = new Map<
    string,
    { message: Message<unknown>; timer: NodeJS.Timeout }
  >();
  private idleTimer: NodeJS.Timeout | undefined;
  private tokens: number;
  private lastRefill = Date.now();
  private lastRateError = 0;
  private closed = false;
  /** Requests of this socket waiting for their reply (BRIDGE_MAX_INFLIGHT). */
  private inflight = 0;
  /** Bytes of replies queued this turn and not yet handed to the socket. */
  private queuedReplyBytes = 0;
  /** The next frame to write, and any queued after it in the same turn (no array for one). */
  private nextFrame: OutboundFrame | undefined;
  private moreFrames: OutboundFrame[] | undefined;
  private readonly outboundNeedsBody: boolean;
  private readonly receiveHooked: boolean;

  constructor(
    private readonly bus: EventBus,
    private readonly transport: BridgeTransport,
    private readonly options: BridgeOptions,
    principal: Principal | undefined,
    remoteAddress: string | undefined,
  ) {
    this.info = { session: randomUUID(), node: bus.nodeId, principal, remoteAddress, attributes: new Map() };
    this.tokens = options.rateBurst;
    this.outboundNeedsBody = options.outbound.some((p) => p.match !== undefined);
    this.receiveHooked = this.hooked('RECEIVE');
  }

  /** Runs SOCKET_CREATED; false when the hook refused the socket (it is closed then). */
  async open(): Promise<boolean> {
    if (!(await this.allowed({ type: 'SOCKET_CREATED', socket: this.info }))) {
      this.transport.close(CloseCode.POLICY, 'rejected');
      this.closed = true;
      return false;
    }
    if (this.transport.extensions) {
      this.write(
        recFrame(CONTROL_ADDRESS, { kind: 'hello', session: this.info.session, node: this.info.node }),
      );
    }
    this.armIdle();
    return true;
  }

  /**
   * Asks the client to reconnect elsewhere, then closes with 1012 (used by graceful drain). The
   * drain already spreads these requests at a bounded rate, so the client is told to add no
   * jitter of its own (`jitterMs: 0`): each second of it would be a second without messages.
   */
  requestReconnect(reason: string, afterMs: number): void {
    if (this.closed) return;
    if (this.transport.extensions)
      this.write(recFrame(CONTROL_ADDRESS, { kind: 'reconnect', reason, afterMs, jitterMs: 0 }));
    this.options.observer?.framesOut(this.flush());
    this.transport.close(CloseCode.SERVICE_RESTART, 'Service Restart');
  }

  /**
   * Tells the client the message store is back (lifecycle/store-recovery.ts): sends it refused
   * with a 503 may be retried now, within `jitterMs`. Raw endpoint only, like every control message.
   */
  hintRetry(reason: string, jitterMs: number): void {
    if (this.closed || !this.transport.extensions) return;
    this.write(recFrame(CONTROL_ADDRESS, { kind: 'retry', reason, jitterMs }));
  }

  /**
   * Answers the usual ping frame at once and returns true, or returns false to have the frame go
   * through onFrame. Every client pings every few seconds, each ping alone in its loop turn: the
   * promises of the frame chain cost more than the ping itself.
   */
  pingNow(data: string): boolean {
    if (data !== PING_TEXT || this.hooked('SOCKET_PING')) return false;
    if (this.admit(data)) this.pong();
    return true;
  }

  async onFrame(data: string): Promise<void> {
    if (!this.admit(data)) return;
    // Every client pings every few seconds, and almost all spell it this way: no parse for it.
    if (data === PING_TEXT) return this.onPing();
    let raw: unknown;
    try {
      raw = JSON.parse(data);
    } catch {
      this.error('invalid_json');
      return;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      this.error('invalid_json', 'a frame is a JSON object');
      return;
    }
    // In Vert.x's order: the type, a ping, the address, then what the type must be.
    const fields = raw as Record<string, unknown>;
    // A refusal names the frame (its `refused` field) on the raw endpoint only: SockJS is there for
    // Vert.x's own clients, which get Vert.x's frames as they are.
    const named = this.transport.extensions ? refusedFrame(fields, this.options.maxAddressLength) : undefined;
    const type = fields.type;
    if (type === undefined || type === null) return this.refuse(named, 'missing_type');
    if (type === 'ping') return this.onPing();
    const address = vertxString(fields.address);
    if (address === undefined) return this.refuse(named, 'missing_address');
    if (typeof type !== 'string' || !KNOWN_TYPES.has(type)) return this.refuse(named, 'invalid_type');
    if (typeof address !== 'string') return this.refuse(named, 'invalid_frame', 'address: expected a string');
    const parsed = inboundFrame.safeParse(asVertxReads(fields));
    if (!parsed.success) {
      this.refuse(
        named,
        'invalid_frame',
        parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      );
      return;
    }
    const frame = parsed.data;
    if (frame.type === 'ping') {
      return this.onPing();
    }
    // Checked for every type, before any permission regex runs on the address (Vert.x: register only).
    if (frame.address.length > this.options.maxAddressLength)
      return this.refuse(named, 'max_address_length_reached');
    switch (frame.type) {
      case 'send':
      case 'publish':
        return this.onSendOrPublish(frame, named);
      case 'register':
        return this.onRegister(frame.address, frame.headers, named);
      case 'unregister':
        return this.onUnregister(frame.address, frame.headers, named);
    }
  }

  /** The socket is gone: release everything it held. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    for (const { timer } of this.awaitingClientReply.values()) clearTimeout(timer);
    this.awaitingClientReply.clear();
    const consumers = [...this.consumers.values()];
    this.consumers.clear();
    await Promise.allSettled(consumers.map((c) => c.unregister()));
    await this.allowed({ type: 'SOCKET_CLOSED', socket: this.info });
  }

  // --- inbound ----------------------------------------------------------------------------

  private async onSendOrPublish(
    frame: {
      type: 'send' | 'publish';
      address: string;
      body?: unknown;
      headers?: Record<string, string> | undefined;
      replyAddress?: string | undefined;
    },
    named: RefusedFrame | undefined,
  ): Promise<void> {
    if (frame.replyAddress !== undefined && frame.replyAddress.length > MAX_CLIENT_REPLY_ADDRESS) {
      return this.refuse(named, 'invalid_reply_address');
    }
    // Vert.x checks a publish's replyAddress, then ignores it.
    const replyAddress = frame.type === 'send' ? frame.replyAddress : undefined;
    // The client answering a message we delivered: replies always pass.
    const awaiting = frame.type === 'send' ? this.awaitingClientReply.get(frame.address) : undefined;
    if (awaiting) {
      clearTimeout(awaiting.timer);
      this.awaitingClientReply.delete(frame.address);
      const body = frame.body ?? null;
      const headers = this.stampHeaders(frame.headers);
      if (replyAddress !== undefined) {
        // A reply that asks for a reply in turn: the exchange goes on (Vert.x's replyAndRequest).
        return this.relay(
          replyAddress,
          () => awaiting.message.replyAndRequest(body, { headers, timeout: this.options.replyTimeoutMs }),
          named,
        );
      }
      try {
        awaiting.message.reply(body, { headers });
      } catch (err) {
        this.refuse(named, 'invalid_frame', err instanceof Error ? err.message : String(err));
      }
      return;
    }
    if (isReservedAddress(frame.address)) return this.refuse(named, 'access_denied', 'reserved address');
    const verdict = checkPermission(
      this.options.inbound,
      frame.address,
      frame.body,
      this.info.principal?.authorities,
    );
    if (verdict !== 'allowed')
      return this.refuse(named, verdict === 'needs_login' ? 'not_logged_in' : 'access_denied');
    const event: BridgeEvent = {
      type: frame.type === 'send' ? 'SEND' : 'PUBLISH',
      socket: this.info,
      frame: {
        address: frame.address,
        body: frame.body ?? null,
        ...(frame.headers ? { headers: frame.headers } : {}),
        ...(replyAddress !== undefined ? { replyAddress } : {}),
      },
    };
    const verdictOfHook = await this.hook(event);
    // The frame as the client sent it is named, not the hook's rewrite of it.
    if (verdictOfHook !== true) return this.refuse(named, verdictOfHook);
    const out = event.frame!;
    const headers = this.stampHeaders(out.headers);
    const body = out.body ?? null;
    if (replyAddress !== undefined) {
      return this.relay(
        replyAddress,
        () => this.bus.request(out.address, body, { headers, timeout: this.options.replyTimeoutMs }),
        named,
      );
    }
    try {
      if (frame.type === 'publish') this.bus.publish(out.address, body, { headers });
      else this.bus.send(out.address, body, { headers });
    } catch (err) {
      if (err instanceof EventBusError) return this.refuse(named, 'invalid_frame', err.message);
      throw err;
    }
  }

  /**
   * Starts a request for the client (to an address, or a reply that expects a reply back) and hands
   * its answer to the client's `clientReplyAddress`: a `rec` frame (whose own replyAddress, if the
   * answer has one, is an alias only this socket can answer) or an `err` frame. Bounded by
   * BRIDGE_MAX_INFLIGHT per socket and BRIDGE_MAX_INFLIGHT_PER_ADDRESS per client address.
   */
  private relay(
    clientReplyAddress: string,
    start: () => Promise<Message<unknown>>,
    named: RefusedFrame | undefined,
  ): void {
    const refuse = (message: string): void =>
      this.write(replyFailureFrame(clientReplyAddress, 'RECIPIENT_FAILURE', 429, message));
    if (this.inflight >= this.options.maxInflight) {
      return refuse(
        `too_many_requests: at most ${this.options.maxInflight} requests per connection wait for a reply`,
      );
    }
    const limits = this.options.addressLimits;
    const ip = this.info.remoteAddress;
    if (limits && !limits.startRequest(ip)) {
      return refuse(
        `too_many_requests: at most ${limits.config.maxInflightPerAddress} requests per client address wait for a reply`,
      );
    }
    let pending: Promise<Message<unknown>>;
    try {
      pending = start();
    } catch (err) {
      // Refused before it left (a body the bus cannot carry): the slot is free again at once.
      limits?.endRequest(ip);
      if (err instanceof EventBusError) return this.refuse(named, 'invalid_frame', err.message);
      throw err;
    }
    this.inflight++;
    // The slot is the address's until the reply comes, even if the socket closes before: a client
    // reconnecting in a loop cannot pile up reads that nobody will receive.
    const settled = (): void => {
      this.inflight--;
      limits?.endRequest(ip);
    };
    pending.then(
      (reply) => {
        settled();
        if (this.closed || this.overBudget(0)) return;
        const alias = reply.replyAddress ? this.expectClientReply(reply) : undefined;
        this.writeReply(recFrame(clientReplyAddress, reply.body, publicHeaders(reply.headers), alias));
      },
      (err: unknown) => {
        settled();
        if (this.closed) return;
        if (err instanceof ReplyException) {
          this.write(replyFailureFrame(clientReplyAddress, err.failureType, err.failureCode, err.message));
        } else {
          this.write(replyFailureFrame(clientReplyAddress, 'ERROR', -1, String(err)));
        }
      },
    );
  }

  /**
   * True (and the socket closed with 1013) when `bytes` more would put more than
   * BRIDGE_MAX_BUFFERED_BYTES between us and the client: checked before a reply is built and
   * again with its size. One reply alone may exceed the limit when nothing else waits.
   */
  private overBudget(bytes: number): boolean {
    const waiting = this.transport.bufferedAmount() + this.queuedReplyBytes;
    if (waiting === 0 || waiting + bytes <= this.options.maxBufferedBytes) return false;
    this.closeNotReading();
    return true;
  }

  private writeReply(text: string): void {
    const bytes = Buffer.byteLength(text);
    if (this.overBudget(bytes)) return;
    this.queuedReplyBytes += bytes;
    this.write(text);
  }

  private async onRegister(
    address: string,
    headers: Record<string, string> | undefined,
    named: RefusedFrame | undefined,
  ): Promise<void> {
    // Vert.x's order: the handler limit, the permission, then a registration already there.
    if (this.consumers.size >= this.options.maxHandlers) return this.refuse(named, 'max_handlers_reached');
    // `match` entries are checked per message on receive; here only the address must be allowed.
    const verdict = checkPermission(
      this.options.outboundByAddress,
      address,
      undefined,
      this.info.principal?.authorities,
    );
    if (verdict !== 'allowed')
      return this.refuse(named, verdict === 'needs_login' ? 'not_logged_in' : 'access_denied');
    if (this.consumers.has(address)) return this.refuse(named, 'address_already_registered');
    const event: BridgeEvent = {
      type: 'REGISTER',
      socket: this.info,
      frame: { address, ...(headers ? { headers } : {}) },
    };
    const hooked = await this.hook(event);
    if (hooked !== true) return this.refuse(named, hooked);
    if (this.closed || this.consumers.has(address)) return;
    let consumer: MessageConsumer;
    try {
      // Without `match` entries the verdict depends only on the address and the socket's
      // authorities: it is kept with the consumer, no lookup per delivery.
      let known: PermissionVerdict | undefined;
      consumer = this.bus.consumer(address, (m) =>
        this.deliver(
          address,
          m,
          this.outboundNeedsBody
            ? this.outboundVerdict(address, m.body)
            : (known ??= this.outboundVerdict(address, undefined)),
        ),
      );
    } catch (err) {
      if (err instanceof EventBusError) return this.refuse(named, 'invalid_frame', err.message);
      throw err;
    }
    this.consumers.set(address, consumer);
    consumer.completion.then(
      () => this.notify({ type: 'REGISTERED', socket: this.info, frame: { address } }),
      () => {}, // the bus logs a failed registration; there is no REGISTERED to tell then
    );
  }

  private async onUnregister(
    address: string,
    headers: Record<string, string> | undefined,
    named: RefusedFrame | undefined,
  ): Promise<void> {
    // As Vert.x: an address no outbound entry names is refused, registered or not (whatever
    // authority an entry requires: only the address counts here).
    if (checkPermission(this.options.outboundByAddress, address, undefined, undefined) === 'denied') {
      return this.refuse(named, 'access_denied');
    }
    const consumer = this.consumers.get(address);
    if (!consumer) return;
    const event: BridgeEvent = {
      type: 'UNREGISTER',
      socket: this.info,
      frame: { address, ...(headers ? { headers } : {}) },
    };
    const hooked = await this.hook(event);
    if (hooked !== true) return this.refuse(named, hooked);
    this.consumers.delete(address);
    await consumer.unregister();
  }

  // --- outbound ---------------------------------------------------------------------------

  private deliver(
    address: string,
    message: Message<unknown>,
    verdict: PermissionVerdict,
  ): void | Promise<void> {
    if (this.closed) return;
    if (verdict !== 'allowed') return;
    if (!this.receiveHooked && !message.replyAddress) {
      this.write(this.cachedRec(address, message));
      return;
    }
    const event: BridgeEvent = {
      type: 'RECEIVE',
      socket: this.info,
      frame: { address, body: message.body, headers: message.headers },
    };
    // A hook that answers RECEIVE at once costs no promise per delivery.
    const hooked = this.hookNow(event);
    if (hooked instanceof Promise)
      return hooked.then((ok) => this.afterReceiveHook(ok, event, address, message));
    this.afterReceiveHook(hooked, event, address, message);
  }

  private outboundVerdict(address: string, body: unknown): PermissionVerdict {
    return checkPermission(this.options.outbound, address, body, this.info.principal?.authorities);
  }

  private afterReceiveHook(
    ok: true | BridgeErrorBody,
    event: BridgeEvent,
    address: string,
    message: Message<unknown>,
  ): void {
    if (ok !== true || this.closed) return;
    const out = event.frame!;
    const alias = message.replyAddress ? this.expectClientReply(message) : undefined;
    const unchanged = out.body === message.body && out.headers === message.headers && !alias;
    this.write(
      unchanged
        ? this.cachedRec(address, message)
        : recFrame(address, out.body, publicHeaders(out.headers), alias),
    );
  }

  private cachedRec(address: string, message: Message<unknown>): OutboundFrame | string {
    const body = message.body;
    if (typeof body !== 'object' || body === null)
      return recFrame(address, body, publicHeaders(message.headers));
    const hit = frameCache.get(body);
    if (hit && hit.address === address) return hit.frame;
    // Built once per message, not per socket: the headers are filtered here, off the fan-out loop.
    const frame = new OutboundFrame(recFrame(address, body, publicHeaders(message.headers)));
    frameCache.set(body, { address, frame });
    return frame;
  }

  /** Keeps the message until this socket replies; returns the alias the client replies to. */
  private expectClientReply(message: Message<unknown>): string {
    const alias = newReplyAlias();
    const timer = setTimeout(() => this.awaitingClientReply.delete(alias), this.options.replyTimeoutMs);
    timer.unref();
    this.awaitingClientReply.set(alias, { message, timer });
    return alias;
  }

  private write(frame: string | OutboundFrame): void {
    if (this.closed) return;
    const f = typeof frame === 'string' ? new OutboundFrame(frame) : frame;
    if (this.nextFrame === undefined) {
      this.nextFrame = f;
      queueFlush(this);
    } else {
      (this.moreFrames ??= []).push(f);
    }
  }

  /**
   * Writes the queued frames to the socket now (once per loop turn, and before a close of our
   * own); returns how many. A session flushed meanwhile writes none.
   */
  flush(): number {
    const first = this.nextFrame;
    if (first === undefined) return 0;
    const more = this.moreFrames;
    this.nextFrame = this.moreFrames = undefined;
    this.queuedReplyBytes = 0;
    if (this.closed) return 0;
    if (this.transport.sendFrames) {
      // Asked only when the socket reports a backlog: the hot path touches no more objects.
      if (!this.transport.sendFrames(first, more)) this.closeIfNotReading();
    } else {
      if (this.closeIfNotReading()) return 0;
      this.transport.send(first.text);
      if (more) for (const f of more) this.transport.send(f.text);
    }
    return more ? more.length + 1 : 1;
  }

  private closeNotReading(): void {
    this.transport.close(CloseCode.TRY_AGAIN_LATER, 'client is not reading');
    void this.close().catch((err: unknown) =>
      this.options.log.warn(
        { err: String(err), session: this.info.session },
        'bridge: closing a session failed',
      ),
    );
  }

  /** A client that does not read must not grow our memory: it reconnects and catches up. */
  private closeIfNotReading(): boolean {
    if (this.transport.bufferedAmount() <= this.options.maxBufferedBytes) return false;
    this.closeNotReading();
    return true;
  }

  get observer(): BridgeObserver | undefined {
    return this.options.observer;
  }

  // --- helpers ----------------------------------------------------------------------------

  /** Our headers win: a client cannot pose as another session or node. */
  private stampHeaders(headers: Record<string, string> | undefined): Record<string, string> {
    return stampHeaders(this.info, headers);
  }

  /** A refusal with nothing to name: the frame was not read (too large, over the rate) or is no JSON object. */
  private error(body: BridgeErrorBody, message?: string): void {
    this.write(errFrame(body, message));
  }

  /** A refusal of a frame that was read: it names the frame (see refusedFrame). */
  private refuse(named: RefusedFrame | undefined, body: BridgeErrorBody, message?: string): void {
    this.write(errFrame(body, message, named));
  }

  /** What every frame goes through first: counted, idle timer pushed back, size and rate checked. */
  private admit(data: string): boolean {
    if (this.closed) return false;
    this.options.observer?.frameIn();
    this.armIdle();
    if (Buffer.byteLength(data) > this.options.maxFrameBytes) {
      this.error('frame_too_large', `frames are limited to ${this.options.maxFrameBytes} bytes`);
      return false;
    }
    return this.takeToken();
  }

  private async onPing(): Promise<void> {
    if (this.hooked('SOCKET_PING')) await this.allowed({ type: 'SOCKET_PING', socket: this.info });
    this.pong();
  }

  private pong(): void {
    if (this.transport.extensions) this.write(PONG);
  }

  private hooked(type: BridgeEventType): boolean {
    return hookFor(this.options, type) !== undefined;
  }

  private async hook(event: BridgeEvent): Promise<true | BridgeErrorBody> {
    const hook = hookFor(this.options, event.type);
    if (!hook) return true;
    let result: BridgeHookResult;
    try {
      result = await hook(event);
    } catch {
      return 'rejected';
    }
    return hookVerdict(result);
  }

  /** The hook's verdict, synchronously when the hook answers synchronously. */
  private hookNow(event: BridgeEvent): true | BridgeErrorBody | Promise<true | BridgeErrorBody> {
    const hook = hookFor(this.options, event.type);
    if (!hook) return true;
    let result: BridgeHookResult | Promise<BridgeHookResult>;
    try {
      result = hook(event);
    } catch {
      return 'rejected';
    }
    if (typeof (result as Promise<BridgeHookResult>)?.then === 'function') {
      return Promise.resolve(result).then(hookVerdict, () => 'rejected' as const);
    }
    return hookVerdict(result as BridgeHookResult);
  }

  private async allowed(event: BridgeEvent): Promise<boolean> {
    return (await this.hook(event)) === true;
  }

  /** Hook events that cannot refuse anything (registered, idle): nobody waits for the verdict. */
  private notify(event: BridgeEvent): void {
    void this.hook(event).catch((err: unknown) =>
      this.options.log.warn({ err: String(err), event: event.type }, 'bridge: hook notification failed'),
    );
  }

  private takeToken(): boolean {
    const now = Date.now();
    this.tokens = Math.min(
      this.options.rateBurst,
      this.tokens + ((now - this.lastRefill) / 1000) * this.options.ratePerSec,
    );
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (now - this.lastRateError > 1_000) {
      this.lastRateError = now;
      this.error('rate_limited', `at most ${this.options.ratePerSec} frames per second`);
    }
    return false;
  }

  private armIdle(): void {
    // One timer per socket, pushed back by every frame: refresh() moves it without a new Timeout.
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.notify({ type: 'SOCKET_IDLE', socket: this.info });
      this.options.observer?.framesOut(this.flush());
      this.transport.close(CloseCode.IDLE, 'idle: no ping');
    }, this.options.idleTimeoutMs);
    this.idleTimer.unref();
  }
}
