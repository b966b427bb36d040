import { isReservedAddress, publicHeaders } from '../delivery.js';
import { EventBusError, ReplyException } from '../../eventbus/failures.js';
import type { Message } from '../../eventbus/types.js';
import type { BridgeEvent } from '../core/hook.js';
import { stampHeaders } from '../core/headers.js';
import { checkPermission } from '../core/permissions.js';
import { routingFor } from '../core/options.js';
import { MAX_CLIENT_REPLY_ADDRESS, recFrame, type RefusedFrame, replyFailureFrame } from './frames.js';
import type { SessionContext } from './session-context.js';
import { runHook } from './session-hooks.js';

/** A client's `send` or `publish` frame, checked (frame-reader.ts). */
export interface SendFrame {
  type: 'send' | 'publish';
  address: string;
  body?: unknown;
  headers?: Record<string, string> | undefined;
  replyAddress?: string | undefined;
}

/**
 * A session's sends and publishes onto the bus: the client's replies to messages it was handed,
 * permissions and the hook, and requests whose answers it waits for, within the in-flight limits.
 */
export class Relay {
  /** Requests of this socket waiting for their reply (BRIDGE_MAX_INFLIGHT). */
  private inflight = 0;

  constructor(private readonly ctx: SessionContext) {}

  async sendOrPublish(frame: SendFrame, named: RefusedFrame | undefined): Promise<void> {
    const { ctx } = this;
    if (frame.replyAddress !== undefined && frame.replyAddress.length > MAX_CLIENT_REPLY_ADDRESS) {
      return ctx.refuse(named, 'invalid_reply_address');
    }
    // Vert.x checks a publish's replyAddress, then ignores it.
    const replyAddress = frame.type === 'send' ? frame.replyAddress : undefined;
    // The client answering a message we delivered: replies always pass.
    const awaiting = frame.type === 'send' ? ctx.replies.take(frame.address) : undefined;
    if (awaiting) {
      const body = frame.body ?? null;
      const headers = stampHeaders(ctx.info, frame.headers);
      if (replyAddress !== undefined) {
        // A reply that asks for a reply in turn: the exchange goes on (Vert.x's replyAndRequest).
        return this.relay(
          replyAddress,
          () => awaiting.replyAndRequest(body, { headers, timeout: ctx.options.replyTimeoutMs }),
          named,
        );
      }
      try {
        awaiting.reply(body, { headers });
      } catch (err) {
        ctx.refuse(named, 'invalid_frame', err instanceof Error ? err.message : String(err));
      }
      return;
    }
    if (isReservedAddress(frame.address)) return ctx.refuse(named, 'access_denied', 'reserved address');
    const verdict = checkPermission(
      ctx.options.inbound,
      frame.address,
      frame.body,
      ctx.info.principal?.authorities,
    );
    if (verdict !== 'allowed')
      return ctx.refuse(named, verdict === 'needs_login' ? 'not_logged_in' : 'access_denied');
    const event: BridgeEvent = {
      type: frame.type === 'send' ? 'SEND' : 'PUBLISH',
      socket: ctx.info,
      frame: {
        address: frame.address,
        body: frame.body ?? null,
        ...(frame.headers ? { headers: frame.headers } : {}),
        ...(replyAddress !== undefined ? { replyAddress } : {}),
      },
    };
    const verdictOfHook = await runHook(ctx.options, event);
    // The frame as the client sent it is named, not the hook's rewrite of it.
    if (verdictOfHook !== true) return ctx.refuse(named, verdictOfHook);
    const out = event.frame!;
    const headers = stampHeaders(ctx.info, out.headers);
    const body = out.body ?? null;
    if (replyAddress !== undefined) {
      return this.relay(
        replyAddress,
        () =>
          ctx.bus.request(out.address, body, {
            headers,
            timeout: ctx.options.replyTimeoutMs,
            ...routingFor(ctx.options, out.address),
          }),
        named,
      );
    }
    try {
      if (frame.type === 'publish') ctx.bus.publish(out.address, body, { headers });
      else ctx.bus.send(out.address, body, { headers, ...routingFor(ctx.options, out.address) });
    } catch (err) {
      if (err instanceof EventBusError) return ctx.refuse(named, 'invalid_frame', err.message);
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
    const { ctx } = this;
    const refuse = (message: string): void =>
      ctx.outbox.write(replyFailureFrame(clientReplyAddress, 'RECIPIENT_FAILURE', 429, message));
    if (this.inflight >= ctx.options.maxInflight) {
      return refuse(
        `too_many_requests: at most ${ctx.options.maxInflight} requests per connection wait for a reply`,
      );
    }
    const limits = ctx.options.addressLimits;
    const ip = ctx.info.remoteAddress;
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
      if (err instanceof EventBusError) return ctx.refuse(named, 'invalid_frame', err.message);
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
        if (ctx.closed || ctx.outbox.overBudget(0)) return;
        const alias = reply.replyAddress ? ctx.replies.expect(reply) : undefined;
        ctx.outbox.writeReply(recFrame(clientReplyAddress, reply.body, publicHeaders(reply.headers), alias));
      },
      (err: unknown) => {
        settled();
        if (ctx.closed) return;
        if (err instanceof ReplyException) {
          ctx.outbox.write(
            replyFailureFrame(clientReplyAddress, err.failureType, err.failureCode, err.message),
          );
        } else {
          ctx.outbox.write(replyFailureFrame(clientReplyAddress, 'ERROR', -1, String(err)));
        }
      },
    );
  }
}
