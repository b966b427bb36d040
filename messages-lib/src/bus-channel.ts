import { CONTROL_ADDRESS } from '@switchboard/protocol';
import type { WebSocketLike } from './client-options.js';
import { ChatError, type FailureType } from './errors.js';
import { PendingRequests, type RefusalError } from './pending-requests.js';
import { bridgeRefusal, type Refusal, refusalOf, type Refused } from './refusal.js';
import type { ServerFrame } from './types.js';
import { utf8Length } from './util.js';

export interface BusChannelOptions {
  /** The socket, if one is open to send on. */
  socket(): WebSocketLike | undefined;
  isOpen(): boolean;
  maxFrameBytes: number;
  requestTimeoutMs: number;
  /** A message on Switchboard's control address. */
  control(body: unknown): void;
  /** The bridge refused a frame (whoever the refusal goes to). */
  refused(reason: string, message?: string): void;
  reportError(err: ChatError): void;
}

/**
 * The event bus over the bridge's socket, in Vert.x frames: sends, requests and their replies,
 * registrations and the handlers of what arrives at them, and refusals handed to the operation
 * whose frame they name.
 */
export class BusChannel {
  private readonly pending = new PendingRequests();
  private readonly handlers = new Map<string, (body: unknown) => void>();
  /** Addresses registered on the current socket, with whom to tell if the bridge refuses one. */
  private readonly registeredHere = new Map<string, Refused | undefined>();

  constructor(private readonly options: BusChannelOptions) {}

  /** A new socket: nothing is registered on it yet. */
  newSocket(): void {
    this.registeredHere.clear();
  }

  send(frame: object): void {
    const ws = this.options.socket();
    if (!ws) throw new ChatError('DISCONNECTED', 'not connected');
    const text = this.serialize(frame);
    ws.send(text);
  }

  /** Throws ChatError INVALID when the frame would exceed the bridge's frame limit. */
  serialize(frame: object): string {
    const text = JSON.stringify(frame);
    const size = utf8Length(text);
    const max = this.options.maxFrameBytes;
    if (size > max) {
      throw new ChatError('INVALID', `the frame would be ${size} bytes; the bridge takes at most ${max}`, {
        reason: 'frame_too_large',
      });
    }
    return text;
  }

  request<T>(
    address: string,
    body: unknown,
    refusal: RefusalError = (reason, message) => bridgeRefusal(address, reason, message),
  ): Promise<T> {
    if (!this.options.isOpen()) return Promise.reject(new ChatError('DISCONNECTED', 'not connected'));
    return this.pending.expect<T>(address, this.options.requestTimeoutMs, refusal, (replyAddress) =>
      this.send({ type: 'send', address, body, replyAddress }),
    );
  }

  /** Every request waiting for a reply fails with `err`. */
  failPending(err: ChatError): void {
    this.pending.failAll(err);
  }

  register(address: string, onRefused?: Refused): void {
    // Already sent on this socket: a refusal still to come concerns the newest caller.
    if (this.registeredHere.has(address)) {
      this.registeredHere.set(address, onRefused);
      return;
    }
    this.send({ type: 'register', address });
    this.registeredHere.set(address, onRefused);
  }

  unregister(address: string): void {
    if (!this.registeredHere.delete(address)) return;
    try {
      this.send({ type: 'unregister', address });
    } catch {
      // not connected: the bridge dropped the registration with the socket
    }
  }

  route(address: string, handler: ((body: unknown) => void) | undefined): void {
    if (handler) this.handlers.set(address, handler);
    else this.handlers.delete(address);
  }

  /** A frame from the bridge. */
  receive(frame: ServerFrame): void {
    switch (frame.type) {
      case 'rec':
        return this.onRec(frame);
      case 'err':
        return this.onErr(frame);
    }
  }

  private onRec(frame: ServerFrame): void {
    const address = frame.address;
    if (typeof address !== 'string') return;
    if (address === CONTROL_ADDRESS) return this.options.control(frame.body);
    const pending = this.pending.take(address);
    if (pending) {
      pending.resolve(frame.body);
      return;
    }
    this.handlers.get(address)?.(frame.body);
  }

  private onErr(frame: ServerFrame): void {
    const refusal = refusalOf(frame, (address) => this.pending.has(address));
    if (!refusal) {
      // A reply failure: its top-level `address` is the request's replyAddress (a late one, for a
      // request that already timed out, is dropped).
      const pending = this.pending.take(frame.address!);
      if (!pending) return;
      pending.reject(replyFailure(frame, pending.address));
      return;
    }
    const { reason, message } = refusal;
    this.options.refused(reason, message);
    if (this.attribute(refusal)) return;
    this.options.reportError(
      new ChatError('BRIDGE', `the bridge refused a frame: ${reason}${message ? ` (${message})` : ''}`, {
        reason,
      }),
    );
  }

  /**
   * Hands a refusal to the operation whose frame it names: a request by its replyAddress, a
   * registration by its address. False when it names nothing of ours (or nothing at all).
   */
  private attribute(refusal: Refusal): boolean {
    // A frame over the rate is dropped unread, and its refusal names nothing. Were one named, the
    // request would still rather time out and be retried than fail for good.
    if (refusal.reason === 'rate_limited') return false;
    const { reason, message, address, replyAddress } = refusal;
    const pending = replyAddress !== undefined ? this.pending.take(replyAddress) : undefined;
    if (pending) {
      pending.reject(pending.refusal(reason, message));
      return true;
    }
    if (address === undefined || !this.registeredHere.has(address)) return false;
    const onRefused = this.registeredHere.get(address);
    // Not registered after all: the next registration of the address is sent again.
    this.registeredHere.delete(address);
    if (!onRefused) return false;
    onRefused(reason, message);
    return true;
  }
}

function replyFailure(frame: ServerFrame, address: string): ChatError {
  const known: FailureType[] = ['TIMEOUT', 'NO_HANDLERS', 'RECIPIENT_FAILURE', 'ERROR'];
  const type = known.find((t) => t === frame.failureType) ?? 'ERROR';
  const code = typeof frame.failureCode === 'number' ? frame.failureCode : -1;
  const message = typeof frame.message === 'string' && frame.message ? frame.message : `${type} (${address})`;
  return new ChatError(type, message, { code });
}
