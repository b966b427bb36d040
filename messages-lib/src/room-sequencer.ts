import { toChatError } from './errors.js';
import type { EmitRoomEvent, JoinResult, RoomHost, RoomTransport } from './room-types.js';
import { type ChatMessage, isChatMessage } from './types.js';
import { backoffDelay, type Timer } from './util.js';

/** What a room's sequencer needs from the room. */
export interface SequencerContext {
  readonly room: string;
  readonly host: RoomHost;
  readonly transport: RoomTransport;
  readonly emit: EmitRoomEvent;
  /** Joined on the current connection: gap fills, syncs and resyncs wait for a join otherwise. */
  joined(): boolean;
  left(): boolean;
  /** The store's epoch changed: join again, for the newest messages. */
  rejoin(): void;
}

/** The valid messages of a room in a reply's list, in seq order. */
export function messagesOf(list: unknown, room: string): ChatMessage[] {
  if (!Array.isArray(list)) return [];
  return list.filter((m): m is ChatMessage => isChatMessage(m, room)).sort((a, b) => a.seq - b.seq);
}

/**
 * A room's message stream: merges live messages and join/history replies into one gap-free,
 * duplicate-free stream in seq order.
 *
 * The cursor is the highest seq delivered; everything below it was delivered or is a hole that
 * history confirmed. A live message at cursor+1 is delivered at once; a higher one waits in the
 * buffer until the gap closes, or until `gapFillMs` passes and `chat.history` fills it.
 */
export class RoomSequencer {
  private cursor: number | undefined;
  /** The server store's epoch as of the last join (undefined: not known, or a server without epochs). */
  private epoch: string | undefined;
  /** Epochs resynced away from: a late message of one of them is dropped, not a new resync. */
  private readonly oldEpochs = new Set<string>();
  private readonly buffer = new Map<number, ChatMessage>();
  private readonly held: ChatMessage[] = [];
  /** Bumped by every halt (a join, a connection loss, a stop): late history replies are ignored. */
  private gen = 0;
  private syncing = false;
  private syncAgain = false;
  private syncAttempts = 0;
  /** Authoritative feed: `synced` fires once the cursor reaches this seq (the join's lastSeq). */
  private syncTarget: number | undefined;
  private gapTimer: Timer | undefined;
  private syncRetryTimer: Timer | undefined;

  constructor(
    private readonly ctx: SequencerContext,
    since: number | undefined,
  ) {
    this.cursor = since;
  }

  /** The highest seq delivered; undefined before the first join. */
  get lastSeq(): number | undefined {
    return this.cursor;
  }

  /** The messages held, in seq order (the newest `maxMessages`). */
  get messages(): readonly ChatMessage[] {
    return this.held;
  }

  /** A join starts, the connection is lost, or the room stops: what was under way is void. */
  halt(): void {
    this.gen++;
    this.syncing = false;
    for (const t of [this.gapTimer, this.syncRetryTimer]) if (t !== undefined) clearTimeout(t);
    this.gapTimer = this.syncRetryTimer = undefined;
  }

  onLive(body: unknown): void {
    if (this.ctx.left() || !isChatMessage(body, this.ctx.room)) return;
    const m = body;
    if (typeof m.epoch === 'string' && this.epoch !== undefined && m.epoch !== this.epoch) {
      if (this.oldEpochs.has(m.epoch)) return;
      if (this.ctx.joined()) this.resync(m.epoch);
      return; // a join is under way: its reply decides
    }
    if (this.cursor === undefined) {
      this.buffer.set(m.seq, m); // before the first join reply: merged with it
      return;
    }
    if (m.seq <= this.cursor || this.buffer.has(m.seq)) return; // already delivered or waiting
    if (this.ctx.transport.authoritativeFeed) {
      this.merge([m], undefined);
      return;
    }
    if (m.seq === this.cursor + 1) {
      this.deliver(m);
      this.drain();
      if (this.buffer.size === 0 && this.gapTimer !== undefined) {
        clearTimeout(this.gapTimer);
        this.gapTimer = undefined;
      }
      return;
    }
    this.buffer.set(m.seq, m);
    if (this.buffer.size > this.ctx.host.settings.maxBuffered) this.requestSync();
    else this.scheduleGapFill();
  }

  /**
   * Takes the epoch of a join's reply. False when it is another history than the one `since`
   * belongs to: the room resyncs instead.
   */
  adoptEpoch(epoch: unknown, since: number | undefined): boolean {
    if (typeof epoch !== 'string') return true;
    if (this.epoch !== undefined && epoch !== this.epoch && since !== undefined) {
      this.resync(epoch);
      return false;
    }
    this.epoch = epoch;
    return true;
  }

  /** Places the cursor from the first join's reply, unless `since` already placed it. */
  anchor(reply: JoinResult, messages: ChatMessage[]): void {
    if (this.cursor !== undefined) return;
    // First join without since: the reply is the newest messages; older ones are history.
    this.cursor =
      typeof reply.feedFrom === 'number'
        ? reply.feedFrom
        : messages.length > 0
          ? messages[0]!.seq - 1
          : Math.max(0, reply.lastSeq);
    for (const seq of this.buffer.keys()) if (seq <= this.cursor) this.buffer.delete(seq);
  }

  /** After a join's messages are merged: catch up with what the reply did not carry, or say synced. */
  catchUp(reply: JoinResult): void {
    const cursor = this.cursor!;
    if (this.ctx.transport.authoritativeFeed) {
      // the feed brings the rest by itself
      this.syncTarget = undefined;
      if (cursor >= reply.lastSeq) this.ctx.emit('synced', { seq: cursor });
      else this.syncTarget = reply.lastSeq;
    } else if (reply.truncated || reply.lastSeq > cursor || this.buffer.size > 0) this.requestSync();
    else this.ctx.emit('synced', { seq: cursor });
  }

  /**
   * Merges an authoritative, ordered list (a join or history reply) into the stream. Seqs it
   * skips are holes the store confirmed, so the cursor moves past them. A buffered live message
   * below one of the list's is delivered first (never out of order, never lost). `target` is the
   * highest live seq seen before the request went out: when the list is the end of the room, those
   * messages were stored before the request, so nothing below them can still come.
   */
  merge(list: ChatMessage[], target: number | undefined): void {
    for (const m of list) {
      if (m.seq <= this.cursor!) continue;
      this.flushBuffered(m.seq - 1);
      if (m.seq > this.cursor!) this.deliver(m);
    }
    if (target !== undefined) this.flushBuffered(target);
    for (const seq of this.buffer.keys()) if (seq <= this.cursor!) this.buffer.delete(seq);
    this.drain();
  }

  /** The highest seq waiting in the buffer. */
  highestBuffered(): number | undefined {
    let max: number | undefined;
    for (const seq of this.buffer.keys()) if (max === undefined || seq > max) max = seq;
    return max;
  }

  /**
   * The store's epoch changed: the seqs we hold belong to another history. Start over from the
   * newest messages (a join without `since`) rather than take new seqs for ones already delivered.
   */
  private resync(to: string): void {
    const from = this.epoch ?? '';
    if (this.epoch !== undefined) this.oldEpochs.add(this.epoch);
    this.epoch = to;
    this.cursor = undefined;
    this.buffer.clear();
    this.held.length = 0;
    this.syncTarget = undefined;
    this.ctx.emit('resync', { from, to });
    this.ctx.rejoin();
  }

  private deliver(m: ChatMessage): void {
    if (this.ctx.left()) return; // a listener left the room meanwhile
    this.cursor = m.seq;
    this.buffer.delete(m.seq);
    this.held.push(m);
    const max = this.ctx.host.settings.maxMessages;
    if (this.held.length > max) this.held.splice(0, this.held.length - max);
    this.ctx.emit('message', m);
    if (this.syncTarget !== undefined && m.seq >= this.syncTarget && !this.ctx.left()) {
      this.syncTarget = undefined;
      this.ctx.emit('synced', { seq: m.seq });
    }
  }

  /** Delivers buffered messages while they continue the cursor. */
  private drain(): void {
    for (let next = this.buffer.get(this.cursor! + 1); next; next = this.buffer.get(this.cursor! + 1)) {
      this.deliver(next);
    }
  }

  /** Delivers buffered messages up to `upTo`, in order, moving past holes. */
  private flushBuffered(upTo: number): void {
    const seqs = [...this.buffer.keys()].filter((s) => s > this.cursor! && s <= upTo).sort((a, b) => a - b);
    for (const s of seqs) this.deliver(this.buffer.get(s)!);
  }

  private scheduleGapFill(): void {
    if (this.gapTimer !== undefined || this.syncing || !this.ctx.joined()) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      this.requestSync();
    }, this.ctx.host.settings.gapFillMs);
  }

  /** Pages `chat.history` from the cursor until the end (a page shorter than the limit). */
  private requestSync(): void {
    if (this.gapTimer !== undefined) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
    if (!this.ctx.joined() || this.syncRetryTimer !== undefined) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    void this.sync(this.gen).catch((err: unknown) => this.ctx.host.reportError(toChatError(err)));
  }

  private async sync(gen: number): Promise<void> {
    this.syncing = true;
    const { host, transport, room } = this.ctx;
    const limit = host.settings.historyPageSize;
    try {
      do {
        this.syncAgain = false;
        const target = this.highestBuffered();
        for (;;) {
          const before = this.cursor!;
          const reply = await transport.history({ room, afterSeq: before, limit });
          if (gen !== this.gen) return;
          const page = messagesOf(reply?.messages, room);
          const end = page.length < limit;
          this.merge(page, end ? target : undefined);
          if (end || this.cursor === before) break;
        }
      } while (this.syncAgain && gen === this.gen);
      this.syncAttempts = 0;
      if (gen !== this.gen) return;
      if (this.buffer.size > 0) {
        this.syncing = false;
        this.scheduleGapFill();
      } else this.ctx.emit('synced', { seq: this.cursor! });
    } catch (err) {
      if (gen !== this.gen) return;
      const e = toChatError(err);
      if (e.failureType === 'DISCONNECTED') return;
      if (!e.retryable) this.ctx.emit('error', e);
      const delay = backoffDelay(this.syncAttempts++, host.settings.retry, host.settings.random);
      this.syncRetryTimer = setTimeout(() => {
        this.syncRetryTimer = undefined;
        this.requestSync();
      }, delay);
    } finally {
      if (gen === this.gen) this.syncing = false;
    }
  }
}
