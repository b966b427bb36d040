import { Chat } from '@switchboard/protocol';
import type { EventBus } from '../eventbus/types.js';
import type { Membership } from './chat-cluster.js';
import type { NameClaims } from './name-claims.js';
import type { Presence } from './presence.js';

/** Pause between presence snapshots of one room: 1 ms per user present, within these bounds. */
const PRESENCE_MIN_PAUSE_MS = 100;
const PRESENCE_MAX_PAUSE_MS = 2_000;

export interface PresencePublisherOptions {
  bus: Pick<EventBus, 'nodeId' | 'publish'>;
  membership: Pick<Membership, 'nodes'>;
  presence: Presence;
  claims: NameClaims;
  /** False once the service stopped: a trailing snapshot is not published then. */
  running: () => boolean;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/**
 * Publishes `chat.presence.<room>` snapshots (coalesced per room), and removes a departed node's
 * presence and name claims, which its own process can no longer do.
 */
export class PresencePublisher {
  /** Rooms with a presence publish out or pausing; true when another one is due after it. */
  private readonly due = new Map<string, boolean>();

  constructor(private readonly opts: PresencePublisherOptions) {}

  /** Publishes the room's presence soon; a failure is logged, never thrown. */
  changed(room: string): void {
    void this.publish(room).catch((err: unknown) => this.failed(room, err));
  }

  /** One node (the lowest id still alive) removes a departed node's presence and announces it. */
  async collect(nodeId: string): Promise<void> {
    const { bus, membership, presence, claims, log } = this.opts;
    const alive = membership
      .nodes()
      .map((n) => n.nodeId)
      .sort();
    if (alive[0] !== bus.nodeId) return;
    try {
      const rooms = await presence.collect(nodeId);
      await claims.collect(nodeId);
      for (const room of rooms) await this.publish(room);
      if (rooms.length > 0) log.info({ nodeId, rooms: rooms.length }, 'removed presence of a departed node');
    } catch (err) {
      log.warn({ nodeId, err: String(err) }, 'could not collect presence of a departed node');
    }
  }

  /**
   * Presence is a snapshot, so publishes for a room are coalesced: the first goes out at once, and
   * changes while it is out (and for a pause after it, the longer the bigger the room) are covered
   * by one trailing publish that reads the state then. Without it a room of n users that all
   * (re)join sends n snapshots of n names to n sockets — a reconnect storm of n³ bytes.
   */
  private publish(room: string): Promise<void> {
    if (this.due.has(room)) {
      this.due.set(room, true);
      return Promise.resolve();
    }
    this.due.set(room, false);
    return this.run(room);
  }

  private failed(room: string, err: unknown): void {
    this.opts.log.warn({ room, err: String(err) }, 'could not publish presence');
  }

  private async run(room: string): Promise<void> {
    let users: string[] = [];
    try {
      users = await this.opts.presence.users(room);
      this.opts.bus.publish(Chat.presence(room), { room, users });
    } catch (err) {
      this.failed(room, err);
    }
    const pauseMs = Math.min(PRESENCE_MAX_PAUSE_MS, Math.max(PRESENCE_MIN_PAUSE_MS, users.length));
    await new Promise((r) => setTimeout(r, pauseMs).unref());
    const again = this.due.get(room) === true && this.opts.running();
    if (!again) {
      this.due.delete(room);
      return;
    }
    this.due.set(room, false);
    return this.run(room);
  }
}
