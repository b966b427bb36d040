/**
 * The room watch, the reader's half of the position check (the writer's half is room-tops.ts).
 *
 * Every node notes the highest seq of each `chat.room.<room>` publish it handed to its own
 * consumers (the bridges' sockets). When a room's writer says the room went quiet at `top` and
 * this node has consumers of the room but saw less, a publish never reached it: the node reads
 * what it missed (at the room's owner, from its recent tail) and publishes it again to its own
 * consumers only. Clients drop a seq they hold, so a second copy is never shown twice; a node that
 * saw everything does nothing. No client is involved: Vert.x clients, the web chat and the gRPC
 * streams all get the message as if its first publish had arrived.
 *
 * Bounds: one Map entry per room with consumers here (dropped once the room has none); at most
 * `maxChecks` reads at a time (further tops are dropped: they are hints, the next quiet period
 * sends them again); each read at most `maxRead` messages.
 */
import type { ChatMessage } from '../store/types.js';
import type { RoomTop } from './room-tops.js';

export interface RoomWatchOptions {
  /** How many consumers of `chat.room.<room>` this node has. */
  consumersOf: (room: string) => number;
  /** Reads messages after `afterSeq`, oldest first (at the room's owner). */
  read: (room: string, afterSeq: number, limit: number) => Promise<ChatMessage[]>;
  /** Publishes a message again to this node's consumers of its room. */
  redeliver: (message: ChatMessage) => void;
  log?: { warn(obj: object, msg: string): void };
  maxChecks?: number;
  maxRead?: number;
}

export interface RoomWatchStats {
  rooms: number;
  /** Messages published again to this node's consumers since start. */
  redelivered: number;
}

export class RoomWatch {
  private readonly seen = new Map<string, number>();
  private readonly checking = new Set<string>();
  private redelivered = 0;
  private readonly maxChecks: number;
  private readonly maxRead: number;

  constructor(private readonly opts: RoomWatchOptions) {
    this.maxChecks = opts.maxChecks ?? 64;
    this.maxRead = opts.maxRead ?? 500;
  }

  /** A publish of a message with `seq` in `room` reached this node's consumers. */
  saw(room: string, seq: number): void {
    if (seq > (this.seen.get(room) ?? 0)) this.seen.set(room, seq);
  }

  /** A writer's tops: checks each room this node has consumers of. */
  tops(tops: readonly RoomTop[]): void {
    for (const [room, top] of tops) {
      if (this.opts.consumersOf(room) === 0) {
        this.seen.delete(room);
        continue;
      }
      const seen = this.seen.get(room);
      if (seen !== undefined && seen >= top) continue;
      if (this.checking.has(room) || this.checking.size >= this.maxChecks) continue;
      this.checking.add(room);
      void this.check(room, top, seen)
        .catch((err: unknown) => this.failed(room, top, err))
        .finally(() => this.checking.delete(room));
    }
  }

  /** Drops the rooms this node has no consumers of any more. */
  sweep(): void {
    for (const room of this.seen.keys()) if (this.opts.consumersOf(room) === 0) this.seen.delete(room);
  }

  stats(): RoomWatchStats {
    return { rooms: this.seen.size, redelivered: this.redelivered };
  }

  private async check(room: string, top: number, seen: number | undefined): Promise<void> {
    // Never saw the room: its consumers came after its last publish here, or missed it; sending
    // the top message again costs each of them at most one frame they drop.
    const after = seen ?? top - 1;
    try {
      const missed = await this.opts.read(room, Math.max(after, top - this.maxRead), this.maxRead);
      for (const m of missed) {
        // What arrived meanwhile (a late publish, another check) is not sent again.
        if (m.seq <= (this.seen.get(room) ?? after)) continue;
        if (m.seq > top) break;
        this.opts.redeliver(m);
        this.redelivered += 1;
      }
    } catch (err) {
      this.failed(room, top, err);
    }
  }

  private failed(room: string, top: number, err: unknown): void {
    this.opts.log?.warn({ room, top, err: String(err) }, 'room watch: could not read what was missed');
  }
}
