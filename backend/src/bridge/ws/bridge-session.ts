import { randomUUID } from 'node:crypto';
import { CONTROL_ADDRESS } from '@switchboard/protocol';
import type { Principal } from '../../auth/principal.js';
import type { EventBus } from '../../eventbus/types.js';
import type { BridgeSocketInfo } from '../core/hook.js';
import type { BridgeObserver, BridgeOptions } from '../core/options.js';
import { SessionConsumers } from './consumers.js';
import { FrameAdmission } from './frame-admission.js';
import { PING_TEXT, readFrame } from './frame-reader.js';
import { PONG_FRAME, recFrame } from './frames.js';
import { OutboundFrame } from './outbound-frame.js';
import { Relay } from './relay.js';
import { SessionContext } from './session-context.js';
import { hookAllows, hooked, notifyHook } from './session-hooks.js';
import { type BridgeTransport, CloseCode } from './transport.js';

export { type BridgeTransport, CloseCode } from './transport.js';

/** Framed once for every socket. */
const PONG = new OutboundFrame(PONG_FRAME);

/**
 * One client connection speaking the Vert.x bridge protocol: frames in, bus calls out, and `rec`
 * frames back for registered addresses and replies. Knows nothing of chat; policies come as hooks.
 *
 * The façade of the session's parts: frame-reader.ts (parsing, Vert.x's checks), frame-admission.ts
 * (size, rate, idle), relay.ts (send, publish, requests), consumers.ts (register, unregister,
 * deliveries), outbox.ts (writes, batching, backpressure); here the lifecycle, pings and the
 * `__sb.control` messages.
 */
export class BridgeSession {
  readonly info: BridgeSocketInfo;
  private readonly ctx: SessionContext;
  private readonly admission: FrameAdmission;
  private readonly relay: Relay;
  private readonly consumers: SessionConsumers;

  constructor(
    bus: EventBus,
    private readonly transport: BridgeTransport,
    private readonly options: BridgeOptions,
    principal: Principal | undefined,
    remoteAddress: string | undefined,
  ) {
    this.info = { session: randomUUID(), node: bus.nodeId, principal, remoteAddress, attributes: new Map() };
    this.ctx = new SessionContext(bus, transport, options, this.info, () => this.closeInBackground());
    this.admission = new FrameAdmission(this.ctx, () => this.onIdle());
    this.relay = new Relay(this.ctx);
    this.consumers = new SessionConsumers(this.ctx);
  }

  /** Runs SOCKET_CREATED; false when the hook refused the socket (it is closed then). */
  async open(): Promise<boolean> {
    if (!(await hookAllows(this.options, { type: 'SOCKET_CREATED', socket: this.info }))) {
      this.transport.close(CloseCode.POLICY, 'rejected');
      this.ctx.closed = true;
      return false;
    }
    if (this.transport.extensions) {
      this.ctx.outbox.write(
        recFrame(CONTROL_ADDRESS, { kind: 'hello', session: this.info.session, node: this.info.node }),
      );
    }
    this.admission.armIdle();
    return true;
  }

  /**
   * Asks the client to reconnect elsewhere, then closes with 1012 (used by graceful drain). The
   * drain already spreads these requests at a bounded rate, so the client is told to add no
   * jitter of its own (`jitterMs: 0`): each second of it would be a second without messages.
   */
  requestReconnect(reason: string, afterMs: number): void {
    if (this.ctx.closed) return;
    if (this.transport.extensions)
      this.ctx.outbox.write(recFrame(CONTROL_ADDRESS, { kind: 'reconnect', reason, afterMs, jitterMs: 0 }));
    this.options.observer?.framesOut(this.flush());
    this.transport.close(CloseCode.SERVICE_RESTART, 'Service Restart');
  }

  /**
   * Tells the client the message store is back (lifecycle/store-recovery.ts): sends it refused
   * with a 503 may be retried now, within `jitterMs`. Raw endpoint only, like every control message.
   */
  hintRetry(reason: string, jitterMs: number): void {
    if (this.ctx.closed || !this.transport.extensions) return;
    this.ctx.outbox.write(recFrame(CONTROL_ADDRESS, { kind: 'retry', reason, jitterMs }));
  }

  /**
   * Answers the usual ping frame at once and returns true, or returns false to have the frame go
   * through onFrame. Every client pings every few seconds, each ping alone in its loop turn: the
   * promises of the frame chain cost more than the ping itself.
   */
  pingNow(data: string): boolean {
    if (data !== PING_TEXT || hooked(this.options, 'SOCKET_PING')) return false;
    if (this.admission.admit(data)) this.pong();
    return true;
  }

  async onFrame(data: string): Promise<void> {
    if (!this.admission.admit(data)) return;
    // Refusals name the frame on the raw endpoint only (see readFrame).
    const read = readFrame(data, this.transport.extensions, this.options.maxAddressLength);
    if (read.kind === 'ping') return this.onPing();
    if (read.kind === 'refused') return this.ctx.refuse(read.named, read.body, read.message);
    const { frame, named } = read;
    switch (frame.type) {
      case 'send':
      case 'publish':
        return this.relay.sendOrPublish(frame, named);
      case 'register':
        return this.consumers.register(frame.address, frame.headers, named);
      case 'unregister':
        return this.consumers.unregister(frame.address, frame.headers, named);
    }
  }

  /** The socket is gone: release everything it held. */
  async close(): Promise<void> {
    if (this.ctx.closed) return;
    this.ctx.closed = true;
    this.admission.stop();
    this.ctx.replies.clear();
    await this.consumers.unregisterAll();
    await hookAllows(this.options, { type: 'SOCKET_CLOSED', socket: this.info });
  }

  /**
   * Writes the queued frames to the socket now (once per loop turn, and before a close of our
   * own); returns how many. A session flushed meanwhile writes none.
   */
  flush(): number {
    return this.ctx.outbox.flush();
  }

  get observer(): BridgeObserver | undefined {
    return this.options.observer;
  }

  private async onPing(): Promise<void> {
    if (hooked(this.options, 'SOCKET_PING'))
      await hookAllows(this.options, { type: 'SOCKET_PING', socket: this.info });
    this.pong();
  }

  private pong(): void {
    if (this.transport.extensions) this.ctx.outbox.write(PONG);
  }

  private onIdle(): void {
    notifyHook(this.options, { type: 'SOCKET_IDLE', socket: this.info });
    this.options.observer?.framesOut(this.flush());
    this.transport.close(CloseCode.IDLE, 'idle: no ping');
  }

  /** After a close of our own (a client that does not read), with nobody to await it. */
  private closeInBackground(): void {
    void this.close().catch((err: unknown) =>
      this.options.log.warn(
        { err: String(err), session: this.info.session },
        'bridge: closing a session failed',
      ),
    );
  }
}
