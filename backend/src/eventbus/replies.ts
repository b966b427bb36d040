import type { ClusterManager } from '../cluster/types.js';
import { nodeOfReplyAddress, replyAddressFor } from './address.js';
import type { BusObserver } from './bus-options.js';
import { deliverTo, type Envelope } from './envelope.js';
import { EventBusError, ReplyException, type ReplyFailureType } from './failures.js';
import type { NodeTransport, WireFailure } from './transport.js';
import type { DeliveryOptions, EventBus, Message } from './types.js';

export interface PendingReply {
  resolve(message: Message<unknown>): void;
  reject(err: ReplyException): void;
  timer: NodeJS.Timeout;
  address: string;
  /** The node the request went to, so a lost link fails it at once. */
  targetNode: string | undefined;
}

/**
 * Both ends of request/reply on one node: the requests made here that wait for an answer (with
 * their timeouts), and the Messages handed to consumers, whose reply/fail go back to the requester.
 */
export class Replies {
  private readonly pending = new Map<string, PendingReply>();
  private replySeq = 0;

  constructor(
    /** Replies travel as sends (and replyAndRequest as a request) on the bus itself. */
    private readonly bus: EventBus,
    private readonly nodeId: string,
    private readonly cluster: ClusterManager,
    private readonly transport: NodeTransport | undefined,
    private readonly observer: BusObserver | undefined,
  ) {}

  nextReplyAddress(): string {
    return replyAddressFor(this.nodeId, ++this.replySeq);
  }

  /** Waits for the reply to a request sent with `replyAddress`, failing it after `timeout` ms. */
  expect<R>(replyAddress: string, address: string, timeout: number): Promise<Message<R>> {
    return new Promise<Message<R>>((resolve, reject) => {
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
  }

  get(replyAddress: string): PendingReply | undefined {
    return this.pending.get(replyAddress);
  }

  complete(envelope: Envelope, failure: WireFailure | undefined): void {
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

  fail(replyAddress: string, err: ReplyException): void {
    const pending = this.pending.get(replyAddress);
    if (!pending) return;
    this.pending.delete(replyAddress);
    clearTimeout(pending.timer);
    pending.reject(err);
  }

  /** Fails at once the requests that went to a node whose link broke or that left. */
  failRequestsTo(nodeId: string, reason: string): void {
    for (const [replyAddress, p] of this.pending) {
      if (p.targetNode === nodeId) {
        this.fail(
          replyAddress,
          new ReplyException('ERROR', -1, `${reason} before it replied (address ${p.address})`),
        );
      }
    }
  }

  /** The bus is closing: every request still waiting fails. */
  failAll(): void {
    for (const [replyAddress, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(replyAddress);
      p.reject(new ReplyException('ERROR', -1, 'the event bus was closed'));
    }
  }

  toMessage(envelope: Envelope): Message<unknown> {
    if (!envelope.decoded) envelope.decoded = { value: envelope.codec.decode(envelope.bytes) };
    const body = envelope.decoded.value;
    const bus = this.bus;
    const replies = this;
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
        replies.sendFailure(answer(), 'RECIPIENT_FAILURE', failureCode, text);
      },
    };
  }

  sendFailure(replyAddress: string, type: ReplyFailureType, code: number, text: string): void {
    const failure: WireFailure = { type, code, message: text };
    const owner = nodeOfReplyAddress(replyAddress);
    if (owner === this.nodeId) {
      const pending = this.pending.get(replyAddress);
      if (pending) {
        queueMicrotask(() => this.fail(replyAddress, new ReplyException(type, code, text)));
      }
      return;
    }
    const peer = owner === undefined ? undefined : this.cluster.node(owner);
    if (!peer || !this.transport) return;
    deliverTo(this.transport, this.observer, peer, {
      address: replyAddress,
      send: true,
      codec: 'json',
      body: Buffer.from('null'),
      failure,
    });
  }
}

/** Tells the observer how long a request took to settle, and how. */
export function timeRequest(promise: Promise<unknown>, observer: BusObserver): void {
  const t0 = performance.now();
  const seconds = (): number => (performance.now() - t0) / 1000;
  promise.then(
    () => observer.requestSettled(seconds(), 'ok'),
    (err: unknown) =>
      observer.requestSettled(seconds(), err instanceof ReplyException ? err.failureType : 'ERROR'),
  );
}
