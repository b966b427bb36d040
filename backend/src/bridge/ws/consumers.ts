import { publicHeaders } from '../delivery.js';
import { EventBusError } from '../../eventbus/failures.js';
import type { Message, MessageConsumer } from '../../eventbus/types.js';
import type { BridgeEvent } from '../core/hook.js';
import { checkPermission, type PermissionVerdict } from '../core/permissions.js';
import type { BridgeErrorBody } from '../core/refusals.js';
import { recFrame, type RefusedFrame } from './frames.js';
import { OutboundFrame } from './outbound-frame.js';
import type { SessionContext } from './session-context.js';
import { hooked, notifyHook, runHook, runHookNow } from './session-hooks.js';

// One serialization per published message, shared by every socket that receives it unchanged.
const frameCache = new WeakMap<object, { address: string; frame: OutboundFrame }>();

/**
 * The addresses a session registered, and what the bus delivers to them on its way to the client:
 * the outbound permission, the RECEIVE hook, and `rec` frames built once per message where they can be.
 */
export class SessionConsumers {
  private readonly consumers = new Map<string, MessageConsumer>();
  private readonly outboundNeedsBody: boolean;
  private readonly receiveHooked: boolean;

  constructor(private readonly ctx: SessionContext) {
    this.outboundNeedsBody = ctx.options.outbound.some((p) => p.match !== undefined);
    this.receiveHooked = hooked(ctx.options, 'RECEIVE');
  }

  async register(
    address: string,
    headers: Record<string, string> | undefined,
    named: RefusedFrame | undefined,
  ): Promise<void> {
    const { ctx } = this;
    // Vert.x's order: the handler limit, the permission, then a registration already there.
    if (this.consumers.size >= ctx.options.maxHandlers) return ctx.refuse(named, 'max_handlers_reached');
    // `match` entries are checked per message on receive; here only the address must be allowed.
    const verdict = checkPermission(
      ctx.options.outboundByAddress,
      address,
      undefined,
      ctx.info.principal?.authorities,
    );
    if (verdict !== 'allowed')
      return ctx.refuse(named, verdict === 'needs_login' ? 'not_logged_in' : 'access_denied');
    if (this.consumers.has(address)) return ctx.refuse(named, 'address_already_registered');
    const event: BridgeEvent = {
      type: 'REGISTER',
      socket: ctx.info,
      frame: { address, ...(headers ? { headers } : {}) },
    };
    const verdictOfHook = await runHook(ctx.options, event);
    if (verdictOfHook !== true) return ctx.refuse(named, verdictOfHook);
    if (ctx.closed || this.consumers.has(address)) return;
    let consumer: MessageConsumer;
    try {
      // Without `match` entries the verdict depends only on the address and the socket's
      // authorities: it is kept with the consumer, no lookup per delivery.
      let known: PermissionVerdict | undefined;
      consumer = ctx.bus.consumer(address, (m) =>
        this.deliver(
          address,
          m,
          this.outboundNeedsBody
            ? this.outboundVerdict(address, m.body)
            : (known ??= this.outboundVerdict(address, undefined)),
        ),
      );
    } catch (err) {
      if (err instanceof EventBusError) return ctx.refuse(named, 'invalid_frame', err.message);
      throw err;
    }
    this.consumers.set(address, consumer);
    consumer.completion.then(
      () => notifyHook(ctx.options, { type: 'REGISTERED', socket: ctx.info, frame: { address } }),
      () => {}, // the bus logs a failed registration; there is no REGISTERED to tell then
    );
  }

  async unregister(
    address: string,
    headers: Record<string, string> | undefined,
    named: RefusedFrame | undefined,
  ): Promise<void> {
    const { ctx } = this;
    // As Vert.x: an address no outbound entry names is refused, registered or not (whatever
    // authority an entry requires: only the address counts here).
    if (checkPermission(ctx.options.outboundByAddress, address, undefined, undefined) === 'denied') {
      return ctx.refuse(named, 'access_denied');
    }
    const consumer = this.consumers.get(address);
    if (!consumer) return;
    const event: BridgeEvent = {
      type: 'UNREGISTER',
      socket: ctx.info,
      frame: { address, ...(headers ? { headers } : {}) },
    };
    const verdictOfHook = await runHook(ctx.options, event);
    if (verdictOfHook !== true) return ctx.refuse(named, verdictOfHook);
    this.consumers.delete(address);
    await consumer.unregister();
  }

  /** The socket is gone: every registration is dropped (failures are the bus's to log). */
  async unregisterAll(): Promise<void> {
    const consumers = [...this.consumers.values()];
    this.consumers.clear();
    await Promise.allSettled(consumers.map((c) => c.unregister()));
  }

  private deliver(
    address: string,
    message: Message<unknown>,
    verdict: PermissionVerdict,
  ): void | Promise<void> {
    if (this.ctx.closed) return;
    if (verdict !== 'allowed') return;
    if (!this.receiveHooked && !message.replyAddress) {
      this.ctx.outbox.write(this.cachedRec(address, message));
      return;
    }
    const event: BridgeEvent = {
      type: 'RECEIVE',
      socket: this.ctx.info,
      frame: { address, body: message.body, headers: message.headers },
    };
    // A hook that answers RECEIVE at once costs no promise per delivery.
    const verdictOfHook = runHookNow(this.ctx.options, event);
    if (verdictOfHook instanceof Promise)
      return verdictOfHook.then((ok) => this.afterReceiveHook(ok, event, address, message));
    this.afterReceiveHook(verdictOfHook, event, address, message);
  }

  private outboundVerdict(address: string, body: unknown): PermissionVerdict {
    return checkPermission(this.ctx.options.outbound, address, body, this.ctx.info.principal?.authorities);
  }

  private afterReceiveHook(
    ok: true | BridgeErrorBody,
    event: BridgeEvent,
    address: string,
    message: Message<unknown>,
  ): void {
    if (ok !== true || this.ctx.closed) return;
    const out = event.frame!;
    const alias = message.replyAddress ? this.ctx.replies.expect(message) : undefined;
    const unchanged = out.body === message.body && out.headers === message.headers && !alias;
    this.ctx.outbox.write(
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
}
