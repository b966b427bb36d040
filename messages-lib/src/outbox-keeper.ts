import { ChatError } from './errors.js';
import type { OutboxEntry, OutboxStorage } from './outbox.js';

/**
 * A client's side of the outbox storage, whatever the transport: loads the stored entries of its
 * user once (a reload, a crash), hands each room its entries at its first join, and writes
 * through. Storage failures are reported, never thrown: the message is still sent from memory.
 */
export class OutboxKeeper {
  /** Entries of this user from the storage, by room, not yet taken by a joined room. */
  private stored: Map<string, OutboxEntry[]> | undefined;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly storage: OutboxStorage,
    private readonly user: string,
    private readonly report: (err: ChatError) => void,
  ) {}

  /** Loads the storage once; later calls wait for the same load. */
  load(): Promise<void> {
    this.loading ??= (async () => {
      let entries: OutboxEntry[] = [];
      try {
        entries = await this.storage.load();
      } catch (err) {
        this.report(new ChatError('STORAGE', `could not load the outbox: ${String(err)}`, { cause: err }));
      }
      const byRoom = new Map<string, OutboxEntry[]>();
      for (const e of entries) {
        if (e.user !== this.user) continue;
        const list = byRoom.get(e.room) ?? [];
        list.push(e);
        byRoom.set(e.room, list);
      }
      this.stored = byRoom;
    })();
    return this.loading;
  }

  /** Starts the load without waiting for it (a client's connect): joins wait for it later. */
  preload(): void {
    void this.load().catch((err: unknown) =>
      this.report(new ChatError('STORAGE', `could not load the outbox: ${String(err)}`, { cause: err })),
    );
  }

  /** The stored entries of a room, handed over once (to the room that joins it). */
  take(room: string): OutboxEntry[] {
    const entries = this.stored?.get(room) ?? [];
    this.stored?.delete(room);
    return entries;
  }

  /** A room that stops keeps its unacked entries for a later join of the same room. */
  giveBack(entries: OutboxEntry[]): void {
    if (entries.length === 0 || !this.stored) return;
    const room = entries[0]!.room;
    this.stored.set(room, [...(this.stored.get(room) ?? []), ...entries]);
  }

  async persist(entry: OutboxEntry): Promise<void> {
    try {
      await this.storage.put(entry);
    } catch (err) {
      // Still sent (from memory); only the survival of a reload is lost.
      this.report(
        new ChatError('STORAGE', `could not store an outbox entry: ${String(err)}`, { cause: err }),
      );
    }
  }

  unpersist(clientMsgId: string): void {
    void (async () => {
      await this.storage.remove(clientMsgId);
    })().catch((err: unknown) =>
      this.report(
        new ChatError('STORAGE', `could not remove an outbox entry: ${String(err)}`, { cause: err }),
      ),
    );
  }
}
