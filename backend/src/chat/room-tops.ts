/**
 * Room tops, the writer's half of the position check (the reader's half is room-watch.ts).
 *
 * A member finds a hole in its stream only when a later message shows it. If the publish of a
 * room's last message never reached a node (a link between nodes broke, a node was cut off for a
 * moment), the members on that node would not see that acked message until they reconnect,
 * however long the room stays quiet. So once a room this node writes has been quiet for `quietMs`,
 * its top (the highest seq this node published there) is sent to every node on an internal
 * address; a node that has members in the room and saw less fills the hole for them. While a room
 * is busy every message already shows holes, so a top goes out once per burst, not per message.
 *
 * Cost: one Map entry per room written in the last `quietMs`, one timer for all of them, and one
 * bus publish per tick listing the rooms that went quiet in it (at most `maxPerBeacon` each).
 * Bounded by `maxRooms`: past it, the oldest entries are sent at once rather than kept.
 */
export type RoomTop = [room: string, top: number];

interface Pending {
  top: number;
  lastAt: number;
}

export interface RoomTopsOptions {
  /** ROOM_TOP_QUIET_MS: how long a room stays quiet before its top goes out (0: never). */
  quietMs: number;
  /** Sends one batch of tops to every node. */
  send: (tops: RoomTop[]) => void;
  maxRooms?: number;
  maxPerBeacon?: number;
  now?: () => number;
}

export class RoomTops {
  /** Least recently published first. */
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly maxRooms: number;
  private readonly maxPerBeacon: number;
  private readonly now: () => number;

  constructor(private readonly opts: RoomTopsOptions) {
    this.maxRooms = opts.maxRooms ?? 100_000;
    this.maxPerBeacon = opts.maxPerBeacon ?? 500;
    this.now = opts.now ?? Date.now;
  }

  /** A message with `seq` was published in `room`. */
  published(room: string, seq: number): void {
    if (this.opts.quietMs <= 0 || this.stopped) return;
    const top = Math.max(seq, this.pending.get(room)?.top ?? 0);
    this.pending.delete(room);
    this.pending.set(room, { top, lastAt: this.now() });
    if (this.pending.size > this.maxRooms) {
      const due: RoomTop[] = [];
      for (const [r, p] of this.pending) {
        if (this.pending.size - due.length <= this.maxRooms) break;
        due.push([r, p.top]);
      }
      for (const [r] of due) this.pending.delete(r);
      this.send(due);
    }
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(this.opts.quietMs / 4)));
      this.timer.unref();
    }
  }

  /** Sends the tops of the rooms quiet for `quietMs`; stops the timer when none is left. */
  tick(): void {
    const quietSince = this.now() - this.opts.quietMs;
    const due: RoomTop[] = [];
    for (const [room, p] of this.pending) {
      if (p.lastAt > quietSince) break; // ordered by lastAt: the rest are busier
      due.push([room, p.top]);
    }
    for (const [room] of due) this.pending.delete(room);
    this.send(due);
    if (this.pending.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Sends every pending top now and stops (the node is leaving: its successors write next). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    const due = [...this.pending].map(([room, p]): RoomTop => [room, p.top]);
    this.pending.clear();
    this.send(due);
  }

  get size(): number {
    return this.pending.size;
  }

  private send(tops: RoomTop[]): void {
    for (let i = 0; i < tops.length; i += this.maxPerBeacon) {
      try {
        this.opts.send(tops.slice(i, i + this.maxPerBeacon));
      } catch {
        // A top is a hint: a bus that is closing takes none, and the messages are stored anyway.
      }
    }
  }
}
