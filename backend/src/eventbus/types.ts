import type { ReplyException } from './failures.js';

export type Headers = Record<string, string>;

/** Delivery options as a value, as in Vert.x's DeliveryOptions. */
export interface DeliveryOptions {
  headers?: Headers;
  /** Request timeout in ms (≥ 1). Default: the bus's default (30 s). */
  timeout?: number;
  /** Deliver only to consumers on this node. */
  localOnly?: boolean;
  /**
   * send/request: to a consumer on this node when it has one, else round-robin over the cluster as
   * usual. For a service every node runs alike (the chat service): another node would only do the
   * same work one hop further away, and its failure would fail a request this node could answer.
   */
  preferLocal?: boolean;
  /** Codec name: `json` (default) or `bytes` (default for Buffer/Uint8Array bodies). */
  codec?: string;
}

export interface Message<T = unknown> {
  readonly address: string;
  readonly body: T;
  readonly headers: Headers;
  /** Set when the sender expects a reply. */
  readonly replyAddress: string | undefined;
  /** True for point-to-point (`send`/`request`), false for `publish`. */
  readonly isSend: boolean;
  reply(body: unknown, options?: DeliveryOptions): void;
  /** Reply and expect a reply back (a conversation, as Vert.x's replyAndRequest). */
  replyAndRequest<R = unknown>(body: unknown, options?: DeliveryOptions): Promise<Message<R>>;
  /** Fail the request: the requester gets RECIPIENT_FAILURE with this code. */
  fail(failureCode: number, message: string): void;
}

/**
 * A consumer's handler. A thrown error or rejected promise on a request becomes a
 * RECIPIENT_FAILURE (code -1) for the requester instead of leaving it to time out.
 */
export type Handler<T = unknown> = (message: Message<T>) => void | Promise<void>;

export interface MessageConsumer {
  readonly address: string;
  readonly localOnly: boolean;
  readonly isRegistered: boolean;
  /** Resolves when the registration reached the cluster (at once in standalone mode). */
  readonly completion: Promise<void>;
  unregister(): Promise<void>;
}

export interface EventBus {
  readonly nodeId: string;
  consumer<T = unknown>(address: string, handler: Handler<T>): MessageConsumer;
  localConsumer<T = unknown>(address: string, handler: Handler<T>): MessageConsumer;
  send(address: string, body: unknown, options?: DeliveryOptions): void;
  publish(address: string, body: unknown, options?: DeliveryOptions): void;
  /** Rejects with a {@link ReplyException}: TIMEOUT, NO_HANDLERS, RECIPIENT_FAILURE or ERROR. */
  request<R = unknown>(address: string, body: unknown, options?: DeliveryOptions): Promise<Message<R>>;
  close(): Promise<void>;
}

export type { ReplyException };
