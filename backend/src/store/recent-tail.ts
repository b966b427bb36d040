/**
 * RecentTailStore: the recent history of active rooms, served from memory, in front of any store.
 *
 * A room's owner node (room-owner.ts) is the one writer of the room and answers its reads, so it
 * can keep the room's newest messages: joins, replays after reconnects and gap fills within that
 * tail, and lastSeq, never reach the database; only older pages do. In steady state the database
 * sees writes only. The first call for a room (a node taking it over) loads the tail with one
 * `latest` call (one indexed query on MongoDB), shared by every caller asking meanwhile.
 *
 * The tail is exact while this node is the room's only writer; every append checks it (seqs are
 * dense: a stored seq above last + 1 means another writer, and the tail is dropped). The chat
 * service calls `forgetRooms()` for the rooms it did not own throughout a change of owners, and
 * says through `setOwnership` which it owns: a room owned elsewhere gets no tail here.
 *
 * Bounds: `perRoom` messages per room (the newest), `perNodeBytes` over all rooms (estimated from
 * each message's text and fields); least recently used rooms go first.
 */
import {
  AppendsInFlight,
  ExpectedHandovers,
  type HandedTail,
  handoverSnapshot,
  tailAfter,
} from './recent-tail-handover.js';
import { clientKey, fromMessages, merge, messageBytes, type RoomTail } from './recent-tail-room.js';
import type { RecentTailOptions, RecentTailStats, TailDropReason } from './recent-tail-types.js';
import { StoreError } from './types.js';
import type { AppendInput, AppendResult, ChatMessage, HistoryQuery, MessageStore } from './types.js';
import { checkAppend, checkHistory, checkLimit, checkRoom } from './validate.js';

export { messageBytes } from './recent-tail-room.js';

export type { RecentTailOptions, RecentTailStats, TailDropReason } from './recent-tail-types.js';

/** A tail being read; `appended`: what this node stored meanwhile, merged in when it lands. */
interface Load {
  promise: Promise<RoomTail>;
  appended: ChatMessage[];
}

export class RecentTailStore implements MessageStore {
  /** Most recently used last. */
  private readonly tails = new Map<string, RoomTail>();
  private readonly loads = new Map<string, Load>();
  private readonly appending = new AppendsInFlight();
  private bytes = 0;
  private messages = 0;
  private loadCount = 0;
  private handedOverCount = 0;
  private readonly handovers: ExpectedHandovers;
  private readonly drops: Record<TailDropReason, number> = {
    moved: 0,
    not_owner: 0,
    other_writer: 0,
    evicted: 0,
    forgotten: 0,
  };
  /** Bumped by forget(): loads started before it are not installed. */
  private generation = 0;
  private owns: (room: string) => boolean = () => true;
  /** Appends accepted here, until they settle: flush() and close() wait for them. */
  private readonly accepted = new Set<Promise<unknown>>();
  private closing = false;

  constructor(
    private readonly inner: MessageStore,
    private readonly opts: RecentTailOptions,
  ) {
    this.handovers = new ExpectedHandovers(opts.perNodeBytes);
  }

  get kind(): string {
    return this.inner.kind;
  }

  /** The store behind the tail. */
  get store(): MessageStore {
    return this.inner;
  }

  stats(): RecentTailStats {
    return {
      rooms: this.tails.size,
      messages: this.messages,
      bytes: this.bytes,
      loads: this.loadCount,
      handedOver: this.handedOverCount,
      drops: { ...this.drops },
    };
  }

  /** Which rooms this node owns (default: all of them, as on a single node). */
  setOwnership(owns: (room: string) => boolean): void {
    this.owns = owns;
  }

  /**
   * Drops the tails of the rooms `stale` names (another node may have written them: ownership
   * moved), and their loads under way. The other rooms keep theirs: a node joining or leaving moves
   * only its own share of the rooms, so only that share is read again.
   */
  forgetRooms(stale: (room: string) => boolean): void {
    for (const [room, tail] of [...this.tails]) if (stale(room)) this.drop(room, tail, 'moved');
    for (const room of [...this.loads.keys()]) if (stale(room)) this.loads.delete(room);
  }

  // --- handover on drain (chat/tail-handover.ts) ------------------------------------------------

  /**
   * The newest `perRoom` messages of the tails held, most recently used first, as long as they fit
   * in `maxBytes` together: what a draining owner hands to the rooms' next owners. With `moved`:
   * only the rooms it names. `busy`: appends of this node to the room are under way (see
   * storedByAppendsUnderWay).
   */
  handoverSnapshot(
    perRoom: number,
    maxBytes: number,
    moved?: (room: string) => boolean,
  ): (HandedTail & { busy: boolean })[] {
    const tails = moved ? new Map([...this.tails].filter(([room]) => moved(room))) : this.tails;
    return handoverSnapshot(tails, perRoom, maxBytes).map((t) => ({
      ...t,
      busy: this.appending.has(t.room),
    }));
  }

  /** What the appends to `room` under way here store, once all done; undefined if one failed. */
  storedByAppendsUnderWay(room: string): Promise<ChatMessage[] | undefined> {
    return this.appending.whenDone(room);
  }

  /** What this node stored in `room` after seq `after`; undefined when its tail does not tell. */
  tailAfter(room: string, after: number): ChatMessage[] | undefined {
    return tailAfter(this.tails.get(room), after);
  }

  /**
   * A draining owner's tail of `room` (its newest messages, dense): the first use of the room here
   * waits for the rest (`completeHandover`), at most `waitMs`, instead of reading the store.
   * Ignored past the node's tail budget, or when the room's tail is here already.
   */
  expectHandover(room: string, messages: ChatMessage[], waitMs: number): void {
    if (this.opts.perRoom === 0 || this.closing || this.tails.has(room) || this.loads.has(room)) return;
    this.handovers.expect(room, messages, waitMs);
  }

  /**
   * The rest of a handed-over tail: what the old owner stored after the announced part (undefined:
   * it could not tell, read the store). Installed at once if this node owns the room; if the change
   * of owners has not reached this node yet, kept ready for a while for the room's first use.
   */
  completeHandover(room: string, more: ChatMessage[] | undefined): void {
    this.handovers.complete(room, more, (whole) => {
      if (this.loads.has(room) || this.tails.has(room) || !this.kept(room)) return false;
      this.handedOverCount++;
      this.install(room, fromMessages(whole));
      return true;
    });
  }

  /** Drops every tail. */
  forget(): void {
    this.handovers.expireAll();
    this.generation++;
    this.drops.forgotten += this.tails.size;
    this.tails.clear();
    this.loads.clear();
    this.bytes = 0;
    this.messages = 0;
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  epoch(): string {
    return this.inner.epoch();
  }

  append(input: AppendInput): Promise<AppendResult> {
    if (this.closing) return Promise.reject(new StoreError('CLOSED', `${this.kind} store is closed`));
    const done = this.appendChecked(input);
    const settled: Promise<unknown> = done.then(
      () => this.accepted.delete(settled),
      () => this.accepted.delete(settled),
    );
    this.accepted.add(settled);
    return done;
  }

  private async appendChecked(input: AppendInput): Promise<AppendResult> {
    const checked = checkAppend(input);
    const room = checked.room;
    if (!this.kept(room)) return this.inner.append(checked);
    // Counted from here: a room that moves meanwhile is handed over with what these store.
    this.appending.enter(room);
    let stored: ChatMessage | 'failed' = 'failed';
    try {
      // A node taking a room over gets the resends of what was in flight when the old owner went:
      // the tail answers those from memory instead of by a duplicate-key error and a lookup each.
      const tail = await this.tail(room);
      const known = tail.byClient.get(clientKey(checked.clientMsgId, checked.user));
      if (known) {
        stored = known;
        return { message: known, duplicate: true };
      }
      const result = await this.inner.append(checked);
      // A duplicate too: a write whose answer was lost (the database went away) may have landed
      // without the tail hearing of it; its retry is where the tail learns the message.
      this.appended(result.message);
      stored = result.message;
      return result;
    } finally {
      this.appending.leave(room, stored);
    }
  }

  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    checkRoom(room);
    const { afterSeq, beforeSeq, limit } = checkHistory(query);
    if (!this.kept(room)) return this.inner.history(room, query);
    const tail = await this.tail(room);
    const top = beforeSeq === undefined ? tail.last : Math.min(tail.last, beforeSeq - 1);
    let from: number;
    let to: number;
    if (afterSeq === undefined && beforeSeq !== undefined) {
      to = top;
      from = Math.max(1, top - limit + 1);
    } else {
      from = (afterSeq ?? 0) + 1;
      to = Math.min(top, from + limit - 1);
    }
    if (to < from) return [];
    const first = tail.messages[0]?.seq ?? tail.last + 1;
    if (from < first) return this.inner.history(room, query);
    this.touch(room, tail);
    return tail.messages.slice(from - first, to - first + 1);
  }

  async latest(room: string, limit: number): Promise<ChatMessage[]> {
    checkRoom(room);
    checkLimit(limit);
    if (!this.kept(room)) return this.inner.latest(room, limit);
    const tail = await this.tail(room);
    const first = tail.messages[0]?.seq ?? tail.last + 1;
    if (limit > tail.messages.length && first > 1) return this.inner.latest(room, limit);
    this.touch(room, tail);
    return tail.messages.slice(-limit);
  }

  async lastSeq(room: string): Promise<number> {
    checkRoom(room);
    if (!this.kept(room)) return this.inner.lastSeq(room);
    return (await this.tail(room)).last;
  }

  isHealthy(): boolean {
    return this.inner.isHealthy();
  }

  async flush(): Promise<void> {
    while (this.accepted.size > 0) await Promise.all(this.accepted);
    await this.inner.flush();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.flush();
    await this.inner.close();
    this.forget();
  }

  // --- the tails ----------------------------------------------------------------------------

  /** Whether this node keeps the room's tail; drops one it no longer should. */
  private kept(room: string): boolean {
    if (this.opts.perRoom > 0 && this.owns(room)) return true;
    const tail = this.tails.get(room);
    if (tail) this.drop(room, tail, 'not_owner');
    this.loads.delete(room);
    return false;
  }

  private tail(room: string): Promise<RoomTail> {
    const tail = this.tails.get(room);
    if (tail) return Promise.resolve(tail);
    let load = this.loads.get(room);
    if (!load) load = this.load(room);
    return load.promise;
  }

  private load(room: string): Load {
    const generation = this.generation;
    const load: Load = { appended: [], promise: Promise.resolve(undefined as unknown as RoomTail) };
    const fromStore = (): Promise<ChatMessage[]> => {
      this.loadCount++;
      return this.inner.latest(room, this.opts.perRoom);
    };
    // A draining owner is handing this room's tail over: wait for it rather than read the store.
    const source =
      this.handovers.take(room, (whole) => {
        if (whole === undefined) return fromStore();
        this.handedOverCount++;
        return whole;
      }) ?? fromStore();
    load.promise = source.then(
      (loaded) => {
        const current = this.loads.get(room) === load;
        if (current) this.loads.delete(room);
        const tail = merge(loaded, load.appended);
        // Installed only if nothing made it doubtful meanwhile (a forget drops the load); callers
        // get it either way (it was right when read, as any read is).
        if (tail && current && generation === this.generation && !this.tails.has(room) && this.kept(room))
          this.install(room, tail);
        return tail ?? fromMessages(loaded);
      },
      (err: unknown) => {
        if (this.loads.get(room) === load) this.loads.delete(room);
        throw err;
      },
    );
    this.loads.set(room, load);
    return load;
  }

  private appended(message: ChatMessage): void {
    const tail = this.tails.get(message.room);
    if (!tail) {
      this.loads.get(message.room)?.appended.push(message);
      return;
    }
    if (message.seq <= tail.last) return; // already in it (an append that raced a load)
    if (message.seq !== tail.last + 1) {
      // Another node stored seqs in between: this tail is not the room's any more.
      this.drop(message.room, tail, 'other_writer');
      return;
    }
    this.add(tail, message);
    this.trim(tail);
    this.touch(message.room, tail);
    this.evict();
  }

  private install(room: string, tail: RoomTail): void {
    this.trim(tail);
    this.tails.set(room, tail);
    this.bytes += tail.bytes;
    this.messages += tail.messages.length;
    this.evict();
  }

  private add(tail: RoomTail, m: ChatMessage): void {
    const size = messageBytes(m);
    tail.messages.push(m);
    tail.byClient.set(clientKey(m.clientMsgId, m.user), m);
    tail.last = m.seq;
    tail.bytes += size;
    if (this.tails.get(m.room) === tail) {
      this.bytes += size;
      this.messages += 1;
    }
  }

  private trim(tail: RoomTail): void {
    const installed = this.tails.get(tail.messages[0]?.room ?? '') === tail;
    while (tail.messages.length > this.opts.perRoom) {
      const old = tail.messages.shift()!;
      const size = messageBytes(old);
      tail.byClient.delete(clientKey(old.clientMsgId, old.user));
      tail.bytes -= size;
      if (installed) {
        this.bytes -= size;
        this.messages -= 1;
      }
    }
  }

  private touch(room: string, tail: RoomTail): void {
    if (this.tails.get(room) !== tail) return;
    this.tails.delete(room);
    this.tails.set(room, tail);
  }

  private drop(room: string, tail: RoomTail, reason: TailDropReason): void {
    if (this.tails.get(room) !== tail) return;
    this.drops[reason]++;
    this.tails.delete(room);
    this.bytes -= tail.bytes;
    this.messages -= tail.messages.length;
  }

  private evict(): void {
    while (this.bytes > this.opts.perNodeBytes && this.tails.size > 0) {
      const [room, tail] = this.tails.entries().next().value as [string, RoomTail];
      this.drop(room, tail, 'evicted');
    }
  }
}
