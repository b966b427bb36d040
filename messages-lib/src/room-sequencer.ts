import { SeqOrder } from '@switchboard/protocol';
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
  /** The cursor (the highest seq delivered) and the live messages waiting behind a gap. */
  private readonly order: SeqOrder<ChatMessage>;
  /** The server store's epoch as of the last join (undefined: not known, or a server without epochs). */
  private epoch: string | undefined;
  /** Epochs resynced away from: a late message of one of them is dropped, not a new resync. */
  private readonly oldEpochs = new Set<string>();
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
    this.order = new SeqOrder<ChatMessage>(since);
  }

  /** The highest seq delivered; undefined before the first join. */
  get lastSeq(): number | undefined {
    return this.order.lastSeq;
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
    const cursor = this.order.lastSeq;
    if (cursor !== undefined && (m.seq <= cursor || this.order.has(m.seq))) return; // delivered or waiting
    if (cursor !== undefined && this.ctx.transport.authoritativeFeed) {
      this.deliverAll(this.order.merge([m]));
      return;
    }
    // Before the first join reply, everything waits: merged with it.
    const now = this.order.live(m);
    if (now.length > 0) {
      this.deliverAll(now);
      if (this.order.waiting === 0 && this.gapTimer !== undefined) {
        clearTimeout(this.gapTimer);
        this.gapTimer = undefined;
      }
      return;
    }
    if (cursor === undefined) return;
    if (this.order.waiting > this.ctx.host.settings.maxBuffered) this.requestSync();
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
    if (this.order.lastSeq !== undefined) return;
    // First join without since: the reply is the newest messages; older ones are history.
    this.order.place(
      typeof reply.feedFrom === 'number'
        ? reply.feedFrom
        : messages.length > 0
          ? messages[0]!.seq - 1
          : Math.max(0, reply.lastSeq),
    );
  }

  /** After a join's messages are merged: catch up with what the reply did not carry, or say synced. */
  catchUp(reply: JoinResult): void {
    const cursor = this.order.lastSeq!;
    if (this.ctx.transport.authoritativeFeed) {
      // the feed brings the rest by itself
      this.syncTarget = undefined;
      if (cursor >= reply.lastSeq) this.ctx.emit('synced', { seq: cursor });
      else this.syncTarget = reply.lastSeq;
    } else if (reply.truncated || reply.lastSeq > cursor || this.order.waiting > 0) this.requestSync();
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
    this.deliverAll(this.order.merge(list, target));
  }

  /** The highest seq waiting behind a gap. */
  highestBuffered(): number | undefined {
    return this.order.highestWaiting();
  }

  /**
   * The store's epoch changed: the seqs we hold belong to another history. Start over from the
   * newest messages (a join without `since`) rather than take new seqs for ones already delivered.
   */
  private resync(to: string): void {
    const from = this.epoch ?? '';
    if (this.epoch !== undefined) this.oldEpochs.add(this.epoch);
    this.epoch = to;
    this.order.reset();
    this.held.length = 0;
    this.syncTarget = undefined;
    this.ctx.emit('resync', { from, to });
    this.ctx.rejoin();
  }

  /** Delivers what the order released, in order, until a listener leaves the room. */
  private deliverAll(messages: ChatMessage[]): void {
    for (const m of messages) {
      if (this.ctx.left()) return;
      this.deliver(m);
    }
  }

  private deliver(m: ChatMessage): void {
    this.held.push(m);
    const max = this.ctx.host.settings.maxMessages;
    if (this.held.length > max) this.held.splice(0, this.held.length - max);
    this.ctx.emit('message', m);
    if (this.syncTarget !== undefined && m.seq >= this.syncTarget && !this.ctx.left()) {
      this.syncTarget = undefined;
      this.ctx.emit('synced', { seq: m.seq });
    }
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
          const before = this.order.lastSeq!;
          const reply = await transport.history({ room, afterSeq: before, limit });
          if (gen !== this.gen) return;
          const page = messagesOf(reply?.messages, room);
          const end = page.length < limit;
          this.merge(page, end ? target : undefined);
          if (end || this.order.lastSeq === before) break;
        }
      } while (this.syncAgain && gen === this.gen);
      this.syncAttempts = 0;
      if (gen !== this.gen) return;
      if (this.order.waiting > 0) {
        this.syncing = false;
        this.scheduleGapFill();
      } else this.ctx.emit('synced', { seq: this.order.lastSeq! });
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
