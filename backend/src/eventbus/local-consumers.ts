import type { ClusterManager } from '../cluster/types.js';
import { validateAddress } from './address.js';
import type { BusLogger } from './bus-options.js';
import type { Envelope } from './envelope.js';
import { EventBusError } from './failures.js';
import type { Replies } from './replies.js';
import type { Handler, Message, MessageConsumer } from './types.js';

interface Registration {
  readonly address: string;
  readonly localOnly: boolean;
  readonly handler: Handler<unknown>;
  registered: boolean;
}

/**
 * The consumers registered on this node: their addresses announced in the cluster's registry,
 * and the hand-over of each message to them (and to the publish tap).
 */
export class LocalConsumers {
  private readonly registrations = new Map<string, Registration[]>();
  /** Addresses with at least one cluster-visible consumer here, and the registry write in flight. */
  private readonly announced = new Map<string, Promise<void>>();
  private closed = false;
  private publishTap: { prefix: string; tap: (message: Message<unknown>) => void } | undefined;

  constructor(
    private readonly cluster: ClusterManager,
    private readonly replies: Replies,
    private readonly log: BusLogger,
    /** Shared with the bus's choice of node (keyed by address); local choices use `local:<address>`. */
    private readonly roundRobin: Map<string, number>,
  ) {}

  has(address: string): boolean {
    return this.registrations.has(address);
  }

  /** Consumers registered on this node, by address (for health and metrics). */
  count(address?: string): number {
    if (address !== undefined) return this.registrations.get(address)?.length ?? 0;
    let n = 0;
    for (const list of this.registrations.values()) n += list.length;
    return n;
  }

  tapPublishes(prefix: string, tap: (message: Message<unknown>) => void): void {
    this.publishTap = { prefix, tap };
  }

  /** The bus is closing: consumers are forgotten, the registry is left to the cluster's leave. */
  close(): void {
    this.closed = true;
    this.registrations.clear();
    this.announced.clear();
  }

  // --- registration ---------------------------------------------------------------------

  register(address: string, handler: Handler<unknown>, localOnly: boolean): MessageConsumer {
    validateAddress(address);
    if (typeof handler !== 'function') {
      throw new EventBusError('INVALID_OPTIONS', 'a consumer needs a handler function');
    }
    const reg: Registration = { address, localOnly, handler, registered: true };
    const list = this.registrations.get(address) ?? [];
    list.push(reg);
    this.registrations.set(address, list);
    const completion = localOnly ? Promise.resolve() : this.announce(address);
    const consumers = this;
    return {
      address,
      localOnly,
      get isRegistered() {
        return reg.registered;
      },
      completion,
      unregister: () => consumers.unregister(reg),
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

  // --- delivery ---------------------------------------------------------------------------

  /**
   * Hands a message to local consumers: one (round-robin) for send, all for publish.
   * Delivery is asynchronous and FIFO, as in Vert.x; remote messages skip local-only consumers.
   */
  deliver(envelope: Envelope, includeLocalOnly: boolean): boolean {
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
      this.publishTap?.tap((envelope.shared ??= this.replies.toMessage(envelope)));
    } catch (err) {
      this.log.warn({ address: envelope.address, err: String(err) }, 'publish tap failed');
    }
  }

  private invoke(reg: Registration, envelope: Envelope): void {
    if (!reg.registered) {
      if (envelope.send && envelope.replyAddress) {
        this.replies.sendFailure(
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
        ? this.replies.toMessage(envelope)
        : (envelope.shared ??= this.replies.toMessage(envelope));
    } catch (err) {
      this.log.warn({ address: envelope.address, err: String(err) }, 'undecodable message dropped');
      if (envelope.replyAddress) {
        this.replies.sendFailure(
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
      this.replies.sendFailure(envelope.replyAddress, 'RECIPIENT_FAILURE', -1, errorText(err));
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
