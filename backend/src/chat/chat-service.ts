import { Chat, type ChatLimits, DEFAULT_CHAT_LIMITS, type RequestAddress } from '@switchboard/protocol';
import type { EventBus, Message, MessageConsumer } from '../eventbus/types.js';
import type { FileStore } from '../files/file-store.js';
import type { MessageStore } from '../store/types.js';
import type { ChatCluster } from './chat-cluster.js';
import { ChatHandlers, type RequestObserver } from './chat-handlers.js';
import { NameClaims } from './name-claims.js';
import { OwnerRouting } from './owner-routing.js';
import { PositionCheck } from './position-check.js';
import { Presence } from './presence.js';
import { PresencePublisher } from './presence-publisher.js';
import { InFlightRequests } from './requests.js';
import { appendAddress, readAddress } from './room-owner.js';
import { RoomWriter } from './room-writer.js';
import { chatSchemas } from './schemas.js';
import { type HandoverTails, TailHandover } from './tail-handover.js';

export interface ChatServiceOptions {
  bus: EventBus;
  /** A ClusterManager fits: see chat-cluster.ts for the part of it chat uses. */
  cluster: ChatCluster;
  store: MessageStore;
  files: FileStore;
  limits?: Partial<ChatLimits>;
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  observer?: ChatObserver;
  /**
   * Called for every change of the set of nodes owning rooms that this node sees, with whether
   * this node owned a room both before and after it: any other room may have been written by
   * another node (a recent tail of it may be stale). The set is also checked every
   * `ownersCheckMs`, so a change is seen even while no request asks for an owner.
   */
  onOwnersChanged?: (ownedThroughout: (room: string) => boolean) => void;
  /** How often the owner set is checked without a request asking (default 250 ms). */
  ownersCheckMs?: number;
  /** ROOM_TOP_QUIET_MS: a room's top goes to every node this long after its last publish (0: never). */
  roomTopQuietMs?: number;
  /** Consumers of an address on this node: with it, the node fills publishes it missed (room-watch.ts). */
  consumersOf?: (address: string) => number;
  /** The recent tails: with them, a drain hands its rooms' tails to their next owners (tail-handover.ts). */
  tails?: HandoverTails;
}

/** What metrics see of the chat service. */
export interface ChatObserver extends RequestObserver {
  /** A stored message was published to its room. */
  published(): void;
}

const noLog = { warn: () => {}, info: () => {} };

/** ROOM_TOP_QUIET_MS by default: see room-tops.ts. */
export const DEFAULT_ROOM_TOP_QUIET_MS = 1_000;

/**
 * The chat service: consumers on the bus, like Vert.x verticles. Every node runs one; any node can
 * answer any request, because seqs and idempotency live in the store and presence in the cluster.
 * A message is published on `chat.room.<room>` only after the store has it, then acked.
 *
 * This class only wires the parts together and runs their lifecycle: the client requests are in
 * chat-handlers.ts, forwarding to a room's owner in owner-routing.ts, store-then-publish in
 * room-writer.ts, presence snapshots in presence-publisher.ts (docs/chat.md#modules).
 */
export class ChatService {
  private readonly bus: EventBus;
  private readonly cluster: ChatCluster;
  private readonly log: NonNullable<ChatServiceOptions['logger']>;
  private readonly requests: InFlightRequests;
  private readonly routing: OwnerRouting;
  private readonly presenceOut: PresencePublisher;
  private readonly handlers: ChatHandlers;
  private readonly handover: TailHandover | undefined;
  private consumers: MessageConsumer[] = [];
  /** Room tops out, missed publishes in: see position-check.ts. */
  readonly positions: PositionCheck;

  constructor(options: ChatServiceOptions) {
    const { bus, cluster, store, observer } = options;
    this.bus = bus;
    this.cluster = cluster;
    this.log = options.logger ?? noLog;
    this.requests = new InFlightRequests(this.log);
    const limits = { ...DEFAULT_CHAT_LIMITS, ...options.limits };
    const presence = new Presence(
      cluster.multiMap('chat.presence'),
      cluster.multiMap('chat.presence.user'),
      cluster,
    );
    const claims = new NameClaims(cluster.map('chat.names'), cluster);
    const writer = new RoomWriter({
      bus,
      store,
      published: (room, seq) => {
        this.positions.published(room, seq);
        observer?.published();
      },
    });
    this.routing = new OwnerRouting({
      bus,
      membership: cluster,
      store,
      limits,
      writer,
      ownersCheckMs: options.ownersCheckMs ?? 250,
      // Rooms that move away go to their new owner warm (before the caller drops their tails).
      onOwnersChanged: (ownedThroughout, ownerNow) => {
        this.handover?.handOverMoved((room) => {
          const to = ownerNow(room);
          return to === this.bus.nodeId ? undefined : to;
        });
        options.onOwnersChanged?.(ownedThroughout);
      },
    });
    this.presenceOut = new PresencePublisher({
      bus,
      membership: cluster,
      presence,
      claims,
      running: () => this.consumers.length > 0,
      log: this.log,
    });
    this.handlers = new ChatHandlers({
      bus,
      store,
      files: options.files,
      schemas: chatSchemas(limits),
      routing: this.routing,
      presence,
      presenceOut: this.presenceOut,
      claims,
      observer,
    });
    this.handover = options.tails
      ? new TailHandover({
          bus,
          tails: options.tails,
          successorOf: (room) => this.routing.successorOf(room),
          epoch: () => store.epoch(),
          log: this.log,
        })
      : undefined;
    this.positions = new PositionCheck({
      bus,
      quietMs: options.roomTopQuietMs ?? DEFAULT_ROOM_TOP_QUIET_MS,
      ...(options.consumersOf ? { consumersOf: options.consumersOf } : {}),
      read: (room, afterSeq, limit) => this.routing.history(room, { afterSeq, limit }),
      epoch: () => store.epoch(),
      log: this.log,
    });
  }

  /** Whether this node is the room's owner now (or no node is: a single node owns everything). */
  ownsRoom(room: string): boolean {
    return this.routing.ownsRoom(room);
  }

  async start(): Promise<void> {
    const { handlers, routing } = this;
    // Before this node's append address is announced: the owners of the rooms that move here hand
    // their tails over as soon as they see that address (tail-handover.ts).
    await this.handover?.start();
    const on = <T>(address: string, fn: (m: Message<unknown>) => Promise<T>): MessageConsumer =>
      this.bus.consumer(address, this.requests.handler(fn));
    // The protocol's reply for the address, or none (a request sent without a reply address).
    const serve = <Req, Rep>(
      address: RequestAddress<Req, Rep>,
      fn: (m: Message<unknown>) => Promise<Rep | undefined>,
    ): MessageConsumer => on(address, fn);
    this.consumers = [
      serve(Chat.join, (m) => handlers.join(m)),
      serve(Chat.send, (m) => handlers.send(m)),
      serve(Chat.history, (m) => handlers.history(m)),
      serve(Chat.leave, (m) => handlers.leave(m)),
      on(appendAddress(this.bus.nodeId), (m) => routing.appendOwned(m)),
      on(readAddress(this.bus.nodeId), (m) => routing.readOwned(m)),
    ];
    // Kept through stop(), until the node leaves the cluster (which takes every listener off): a
    // draining node still counts among the live ones, and may be the one to collect.
    this.cluster.on('nodeLeft', (nodeId) => {
      void this.presenceOut
        .collect(nodeId)
        .catch((err: unknown) =>
          this.log.warn({ nodeId, err: String(err) }, 'could not collect presence of a departed node'),
        );
    });
    routing.watchOwners();
    await Promise.all([...this.consumers.map((c) => c.completion), this.positions.start()]);
  }

  /**
   * Stops taking requests (consumers unregistered, so the cluster routes elsewhere) and waits,
   * at most `graceMs`, for the ones in flight to be answered: a drain must not drop an ack.
   */
  async stop(graceMs = 10_000): Promise<void> {
    // The rooms' next owners get the tails while this node still owns them, then what it stored
    // until its last request was answered (tail-handover.ts).
    const plan = this.handover?.announce();
    this.routing.stopWatching();
    await Promise.all(this.consumers.map((c) => c.unregister()));
    this.consumers = [];
    await this.requests.drain(graceMs);
    if (plan) this.handover?.complete(plan);
    await Promise.all([this.positions.stop(), this.handover?.stop()]);
  }
}
