/**
 * The position check on the bus: the writer's room tops (room-tops.ts) go to every node on
 * `__sb.chat.tops`, each node's room watch (room-watch.ts) compares them with what it delivered.
 * The address is bus-internal (`__sb.*`): no client can send to it or register it.
 */
import { Chat } from '@switchboard/protocol';
import type { EventBus, Message, MessageConsumer } from '../eventbus/types.js';
import type { ChatMessage } from '../store/types.js';
import { type RoomTop, RoomTops } from './room-tops.js';
import { RoomWatch } from './room-watch.js';

export const ROOM_TOPS_ADDRESS = '__sb.chat.tops';
const ROOM_PREFIX = Chat.room('');
/** How often rooms without consumers here any more are forgotten. */
const SWEEP_MS = 30_000;
/** A beacon listing more rooms than a writer ever sends is not one of ours. */
const MAX_TOPS_PER_BEACON = 1_000;

export interface PositionCheckOptions {
  bus: EventBus;
  /** ROOM_TOP_QUIET_MS (0: the check is off on this node's rooms). */
  quietMs: number;
  /** Consumers of an address on this node (the bus's local count); without it nothing is watched. */
  consumersOf?: (address: string) => number;
  read: (room: string, afterSeq: number, limit: number) => Promise<ChatMessage[]>;
  /** The store's epoch, stamped on what is published again. */
  epoch: () => string;
  log?: { warn(obj: object, msg: string): void };
}

export class PositionCheck {
  private readonly tops: RoomTops;
  private readonly watch: RoomWatch | undefined;
  private consumer: MessageConsumer | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: PositionCheckOptions) {
    this.tops = new RoomTops({
      quietMs: opts.quietMs,
      send: (tops) => opts.bus.publish(ROOM_TOPS_ADDRESS, { tops }),
    });
    const consumersOf = opts.consumersOf;
    if (consumersOf) {
      this.watch = new RoomWatch({
        consumersOf: (room) => consumersOf(Chat.room(room)),
        read: opts.read,
        redeliver: (m) =>
          opts.bus.publish(Chat.room(m.room), { ...m, epoch: opts.epoch() }, { localOnly: true }),
        ...(opts.log ? { log: opts.log } : {}),
      });
    }
  }

  start(): Promise<void> {
    if (!this.watch) return Promise.resolve();
    const watch = this.watch;
    this.consumer = this.opts.bus.consumer(ROOM_TOPS_ADDRESS, (m) => {
      const tops = parseTops(m.body);
      if (tops) watch.tops(tops);
    });
    this.sweepTimer = setInterval(() => watch.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    return this.consumer.completion;
  }

  /** This node published a message of `room` (as its writer). */
  published(room: string, seq: number): void {
    this.tops.published(room, seq);
  }

  /** For the bus's publish tap on `chat.room.`: a publish reached this node's consumers. */
  delivered(message: Message<unknown>): void {
    const seq = (message.body as { seq?: unknown } | null)?.seq;
    if (this.watch && typeof seq === 'number') this.watch.saw(message.address.slice(ROOM_PREFIX.length), seq);
  }

  /** Sends the pending tops (successors write the rooms next) and stops watching. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.tops.stop();
    await this.consumer?.unregister().catch(() => {}); // stopping anyway; the bus logs a failure
  }
}

function parseTops(body: unknown): RoomTop[] | undefined {
  const tops = (body as { tops?: unknown } | null)?.tops;
  if (!Array.isArray(tops) || tops.length > MAX_TOPS_PER_BEACON) return undefined;
  const ok = tops.every(
    (t: unknown) =>
      Array.isArray(t) && typeof t[0] === 'string' && typeof t[1] === 'number' && Number.isSafeInteger(t[1]),
  );
  return ok ? (tops as RoomTop[]) : undefined;
}
