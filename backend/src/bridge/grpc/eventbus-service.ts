import { randomUUID } from 'node:crypto';
import { Metadata, type ServerUnaryCall, type ServerWritableStream, status } from '@grpc/grpc-js';
import { validateAddress } from '../../eventbus/address.js';

import type { DeliveryOptions, EventBus, Message, MessageConsumer } from '../../eventbus/types.js';
import type { BridgeEvent, BridgeSocketInfo } from '../core/hook.js';
import { routingFor } from '../core/options.js';
import { isReservedAddress, newReplyAlias, publicHeaders } from '../delivery.js';
import { ipOfPeer } from '../limits.js';
import {
  authenticateCall,
  endAtExpiry,
  type GrpcBridgeContext,
  notifyHook,
  peerSession,
  requirePermission,
  runHook,
  socketInfo,
  stampHeaders,
} from './context.js';
import { BoundedStreamWriter } from './flow.js';
import { fromJsonValue, parseFormat, toJsonValue } from './json-value.js';
import type { proto } from '@switchboard/protocol';
import type { EventBusBridgeHandlers } from './proto.js';
import { GrpcError, toGrpcError } from './status.js';
import { serverMetadata, serverStream, unary } from './calls.js';

/** Response header naming a Subscribe stream's consumer (as Vert.x 5). */
export const CONSUMER_ID_HEADER = 'vertx-event-bus-consumer-id';
/** Longest timeout a client may ask for (SendOp/RequestOp.timeout or the `timeout` header). */
export const MAX_TIMEOUT_MS = 3_600_000;

interface Subscription {
  id: string;
  address: string;
  user: string | undefined;
  consumer: MessageConsumer;
  writer: BoundedStreamWriter<proto.EventBusMessage>;
  socket: BridgeSocketInfo;
}

/**
 * `vertx.event.v1alpha.EventBusBridge` on the bus: every RPC is one bus call, through the same
 * permissions and hook as the WebSocket bridge. Bodies are JSON values (JsonValue).
 */
export class EventBusBridgeService {
  private readonly subscriptions = new Map<string, Subscription>();
  /**
   * Bus messages handed to gRPC subscribers that expect a reply, by the unguessable alias the
   * subscriber got instead of the bus's reply address, with who may answer: the subscriber's
   * client address and user.
   */
  private readonly awaitingReply = new Map<
    string,
    { message: Message<unknown>; timer: NodeJS.Timeout; ip: string; user: string | undefined }
  >();

  constructor(
    private readonly bus: EventBus,
    private readonly ctx: GrpcBridgeContext,
  ) {}

  /** Subscribe streams open now, and the most messages any of them queued (flow control). */
  stats(): { subscriptions: number; queued: number; highWater: number } {
    let queued = 0;
    let highWater = 0;
    for (const s of this.subscriptions.values()) {
      queued += s.writer.queued;
      highWater = Math.max(highWater, s.writer.highWater);
    }
    return { subscriptions: this.subscriptions.size, queued, highWater };
  }

  handlers(): EventBusBridgeHandlers {
    return {
      publish: unary(this.ctx, (call: ServerUnaryCall<proto.PublishOp, proto.Empty>) => this.publish(call)),
      send: unary(this.ctx, (call: ServerUnaryCall<proto.SendOp, proto.Empty>) => this.send(call)),
      request: unary(this.ctx, (call: ServerUnaryCall<proto.RequestOp, proto.EventBusMessage>) =>
        this.request(call),
      ),
      subscribe: serverStream(this.ctx, (call) => this.subscribe(call)),
      unsubscribe: unary(this.ctx, (call: ServerUnaryCall<proto.UnsubscribeOp, proto.Empty>) =>
        this.unsubscribe(call),
      ),
      ping: unary(this.ctx, () => Promise.resolve({})),
    };
  }

  /** Ends every Subscribe stream with UNAVAILABLE and a `reconnect` trailer (node draining). */
  closeAll(reason: string): number {
    const open = [...this.subscriptions.values()];
    for (const s of open) {
      const md = new Metadata();
      md.set('reconnect', 'true');
      s.writer.fail(status.UNAVAILABLE, `${reason}: reconnect`, md);
    }
    for (const { timer } of this.awaitingReply.values()) clearTimeout(timer);
    this.awaitingReply.clear();
    return open.length;
  }

  // --- RPCs -------------------------------------------------------------------------------------

  private async publish(call: ServerUnaryCall<proto.PublishOp, proto.Empty>): Promise<proto.Empty> {
    const { out, options } = await this.inbound(call, 'PUBLISH');
    this.bus.publish(out.address, out.body ?? null, options);
    return {};
  }

  /**
   * Fire and forget, as Vert.x — except that a SendOp with a `timeout` waits for the recipient's
   * reply (or failure) within it, so the caller learns NOT_FOUND, DEADLINE_EXCEEDED or the
   * recipient's failure; the reply body is discarded.
   */
  private async send(call: ServerUnaryCall<proto.SendOp, proto.Empty>): Promise<proto.Empty> {
    const timeout = durationMs(call.request.timeout, 'timeout');
    // A reply to a message a subscriber received: replies always pass.
    const address = call.request.address ?? '';
    const awaiting = this.awaitingReply.get(address);
    if (awaiting) {
      const principal = await authenticateCall(this.ctx, call.metadata);
      if (awaiting.ip !== ipOfPeer(call.getPeer()) || awaiting.user !== principal?.user)
        throw new GrpcError(status.PERMISSION_DENIED, 'access_denied: a reply comes from its recipient');
      const socket = socketInfo(this.ctx, principal, call.getPeer(), peerSession(call.getPeer()));
      clearTimeout(awaiting.timer);
      this.awaitingReply.delete(address);
      awaiting.message.reply(fromJsonValue(call.request.body), {
        headers: stampHeaders(socket, call.request.headers, call.metadata),
      });
      return {};
    }
    const { out, options } = await this.inbound(call, 'SEND');
    if (timeout === undefined) {
      this.bus.send(out.address, out.body ?? null, options);
      return {};
    }
    await this.bus.request(out.address, out.body ?? null, { ...options, timeout });
    return {};
  }

  private async request(
    call: ServerUnaryCall<proto.RequestOp, proto.EventBusMessage>,
  ): Promise<proto.EventBusMessage> {
    const format = parseFormat(call.request.replyBodyFormat, 'reply_body_format');
    const timeout = durationMs(call.request.timeout, 'timeout');
    const { out, options } = await this.inbound(call, 'SEND');
    const reply = await this.bus.request(out.address, out.body ?? null, {
      ...options,
      timeout: timeout ?? options.timeout ?? this.ctx.options.replyTimeoutMs,
    });
    return {
      address: reply.address,
      headers: publicHeaders(reply.headers) ?? {},
      body: toJsonValue(reply.body, format),
    };
  }

  private async unsubscribe(call: ServerUnaryCall<proto.UnsubscribeOp, proto.Empty>): Promise<proto.Empty> {
    const principal = await authenticateCall(this.ctx, call.metadata);
    const id = call.request.consumerId ?? '';
    if (id === '') throw new GrpcError(status.INVALID_ARGUMENT, 'consumer_id: required');
    const sub = this.subscriptions.get(id);
    // Another user's consumer is as unknown as a missing one.
    if (!sub || sub.user !== principal?.user)
      throw new GrpcError(status.NOT_FOUND, `no consumer ${JSON.stringify(id)} on this node`);
    notifyHook(this.ctx, 'UNREGISTER', sub.socket);
    sub.writer.end();
    return {};
  }

  private async subscribe(
    call: ServerWritableStream<proto.SubscribeOp, proto.EventBusMessage>,
  ): Promise<void> {
    const fail = (err: unknown): void => {
      const e = toGrpcError(err);
      call.emit('error', { code: e.code, details: e.details, metadata: e.metadata });
    };
    let socket: BridgeSocketInfo;
    let address: string;
    let format: proto.JsonValueFormat;
    let admitted: () => void;
    try {
      admitted = this.ctx.admission.stream(call.getPeer());
    } catch (err) {
      return fail(err);
    }
    try {
      const principal = await authenticateCall(this.ctx, call.metadata);
      address = checkedAddress(call.request.address, this.ctx.options.maxAddressLength);
      format = parseFormat(call.request.messageBodyFormat, 'message_body_format');
      socket = socketInfo(this.ctx, principal, call.getPeer());
      requirePermission(this.ctx.options.outboundByAddress, address, undefined, principal);
      await runHook(this.ctx, { type: 'SOCKET_CREATED', socket });
      await runHook(this.ctx, {
        type: 'REGISTER',
        socket,
        frame: { address, ...(call.request.headers ? { headers: call.request.headers } : {}) },
      });
    } catch (err) {
      admitted();
      return fail(err);
    }
    if (call.cancelled) return admitted();
    const id = randomUUID();
    let expiry = (): void => {};
    const writer = new BoundedStreamWriter<proto.EventBusMessage>(call, this.ctx.maxStreamQueue, () => {
      admitted();
      expiry();
      const sub = this.subscriptions.get(id);
      this.subscriptions.delete(id);
      if (sub) {
        void sub.consumer.unregister().catch(() => {}); // the bus logs a failure
        notifyHook(this.ctx, 'SOCKET_CLOSED', sub.socket);
      }
    });
    expiry = endAtExpiry(socket.principal, (code, details) => writer.fail(code, details));
    let consumer: MessageConsumer;
    try {
      consumer = this.bus.consumer(address, (m) => this.deliver(id, m, format));
    } catch (err) {
      const e = toGrpcError(err);
      return writer.fail(e.code, e.details, e.metadata);
    }
    this.subscriptions.set(id, { id, address, user: socket.principal?.user, consumer, writer, socket });
    const md = serverMetadata(this.ctx);
    md.set(CONSUMER_ID_HEADER, id);
    call.sendMetadata(md);
    consumer.completion.then(
      () => notifyHook(this.ctx, 'REGISTERED', socket),
      () => writer.fail(status.UNAVAILABLE, `could not register a consumer on ${address}`),
    );
  }

  // --- helpers -------------------------------------------------------------------------------------

  private async deliver(id: string, message: Message<unknown>, format: proto.JsonValueFormat): Promise<void> {
    const sub = this.subscriptions.get(id);
    if (!sub || sub.writer.ended) return;
    const principal = sub.socket.principal;
    try {
      requirePermission(this.ctx.options.outbound, sub.address, message.body, principal);
    } catch {
      return; // `match` entries filter per message, silently, as in Vert.x
    }
    const event: BridgeEvent = {
      type: 'RECEIVE',
      socket: sub.socket,
      frame: { address: sub.address, body: message.body, headers: message.headers },
    };
    try {
      await runHook(this.ctx, event);
    } catch {
      return;
    }
    let alias: string | undefined;
    if (message.replyAddress) {
      const key = (alias = newReplyAlias());
      const timer = setTimeout(() => this.awaitingReply.delete(key), this.ctx.options.replyTimeoutMs);
      timer.unref();
      const ip = ipOfPeer(sub.socket.remoteAddress ?? '');
      this.awaitingReply.set(key, { message, timer, ip, user: principal?.user });
    }
    sub.writer.write({
      address: sub.address,
      consumerId: id,
      ...(alias ? { replyAddress: alias } : {}),
      headers: publicHeaders(event.frame?.headers ?? message.headers) ?? {},
      body: toJsonValue(event.frame?.body, format),
    });
  }

  /** Validation, permission and hook of a client → bus message; returns what goes on the bus. */
  private async inbound(
    call: ServerUnaryCall<proto.PublishOp, unknown>,
    type: 'SEND' | 'PUBLISH',
  ): Promise<{ out: { address: string; body?: unknown }; options: DeliveryOptions }> {
    const principal = await authenticateCall(this.ctx, call.metadata);
    const address = checkedAddress(call.request.address, this.ctx.options.maxAddressLength);
    if (isReservedAddress(address))
      throw new GrpcError(status.PERMISSION_DENIED, `access_denied: ${address} is reserved`);
    const body = fromJsonValue(call.request.body);
    const { headers, options } = deliveryFromHeaders(call.request.headers);
    requirePermission(this.ctx.options.inbound, address, body, principal);
    const socket = socketInfo(this.ctx, principal, call.getPeer(), peerSession(call.getPeer()));
    const event: BridgeEvent = {
      type,
      socket,
      frame: { address, body, ...(headers ? { headers } : {}) },
    };
    await runHook(this.ctx, event);
    const frame = event.frame!;
    return {
      out: { address: frame.address, body: frame.body },
      options: {
        ...routingFor(this.ctx.options, frame.address),
        ...options,
        headers: stampHeaders(socket, frame.headers, call.metadata),
      },
    };
  }
}

function checkedAddress(address: string | undefined, max: number): string {
  if (!address) throw new GrpcError(status.INVALID_ARGUMENT, 'address: required');
  if (address.length > max)
    throw new GrpcError(
      status.INVALID_ARGUMENT,
      `address: ${address.length} characters, the limit is ${max}`,
    );
  try {
    return validateAddress(address);
  } catch (err) {
    throw new GrpcError(status.INVALID_ARGUMENT, `address: ${(err as Error).message}`);
  }
}

/** A Duration in ms, undefined when unset or zero; negative or absurd values are INVALID_ARGUMENT. */
export function durationMs(d: proto.Duration | undefined, field: string): number | undefined {
  if (!d) return undefined;
  const ms = (d.seconds ?? 0) * 1000 + (d.nanos ?? 0) / 1e6;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_TIMEOUT_MS)
    throw new GrpcError(status.INVALID_ARGUMENT, `${field}: expected 0 to ${MAX_TIMEOUT_MS / 1000} s`);
  if (ms === 0) return undefined;
  return Math.max(1, Math.round(ms));
}

/** Vert.x's special headers `timeout` (ms), `localOnly` and `codecName` become delivery options. */
function deliveryFromHeaders(headers: Record<string, string> | undefined): {
  headers: Record<string, string> | undefined;
  options: DeliveryOptions;
} {
  if (!headers) return { headers, options: {} };
  const rest: Record<string, string> = {};
  const options: DeliveryOptions = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k === 'timeout') {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < 1 || n > MAX_TIMEOUT_MS)
        throw new GrpcError(status.INVALID_ARGUMENT, `headers.timeout: expected 1 to ${MAX_TIMEOUT_MS} (ms)`);
      options.timeout = n;
    } else if (k === 'localOnly') {
      if (v !== 'true' && v !== 'false')
        throw new GrpcError(status.INVALID_ARGUMENT, 'headers.localOnly: expected true or false');
      options.localOnly = v === 'true';
    } else if (k === 'codecName') {
      if (v !== 'json')
        throw new GrpcError(status.INVALID_ARGUMENT, 'headers.codecName: only "json" over gRPC');
      options.codec = v;
    } else {
      rest[k] = v;
    }
  }
  return { headers: rest, options };
}
