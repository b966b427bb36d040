import { TypedEmitter } from './emitter.js';
import { ChatError } from './errors.js';
import type { OutboxEntry } from './outbox.js';
import { bridgeRefusal, type Refused } from './refusal.js';
import { sendRetryDelay } from './send-retry.js';
import {
  type ChatMessage,
  type FileRef,
  isChatMessage,
  type JoinReply,
  type PresenceUpdate,
  type SendAck,
} from './types.js';
import { backoffDelay, type BackoffOptions, type Timer, uuid } from './util.js';

export type RoomState = 'joining' | 'joined' | 'rejoining' | 'left';

export interface RoomEvents {
  /** A message, in seq order, each seq exactly once. */
  message: ChatMessage;
  /** The users present in the room (after every join, leave, or node death). */
  presence: string[];
  /** The outbox of the room changed (an entry was added, acked, or failed). */
  pending: readonly OutboxEntry[];
  /** An outbox entry was stored by the server. */
  sent: { entry: OutboxEntry; ack: SendAck };
  /** An outbox entry was refused for good (RECIPIENT_FAILURE 4xx/500) and dropped. */
  sendFailed: { entry: OutboxEntry; error: ChatError };
  /** A (re)join succeeded; `rejoin` is false the first time. */
  joined: { lastSeq: number; rejoin: boolean };
  /**
   * The server's store was reset or restored (its epoch changed): the room's seqs started again.
   * The room dropped its cursor and the messages it held, and rejoins for the newest messages;
   * `message` events follow for the new history. `from`/`to`: the old and new epochs.
   */
  resync: { from: string; to: string };
  /** Everything the server had when asked has been delivered; `seq` is the highest delivered. */
  synced: { seq: number };
  state: RoomState;
  error: ChatError;
}

export interface HistoryQuery {
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
}

/** What a room needs from its client. Internal. */
export interface RoomHost {
  readonly user: string;
  readonly settings: {
    gapFillMs: number;
    historyPageSize: number;
    maxMessages: number;
    maxBuffered: number;
    retry: BackoffOptions;
    random: () => number;
  };
  /**
   * The live feed is authoritative: it carries every stored message after the join's `since`,
   * gap-free and in seq order (a gRPC Join stream), so a seq it skips is a hole the server
   * confirmed and nothing waits for a gap fill. False for bus subscriptions (WebSocket).
   */
  readonly authoritativeFeed?: boolean;
  isOpen(): boolean;
  /**
   * `refusal`: the error the request fails with when the bridge refuses its frame (default: a
   * BRIDGE error naming the address).
   */
  request<T>(
    address: string,
    body: unknown,
    refusal?: (reason: string, message?: string) => ChatError,
  ): Promise<T>;
  /**
   * Registers the address on the current socket (once per socket); throws DISCONNECTED when not
   * open. `onRefused` hears of the bridge refusing the registration.
   */
  register(address: string, onRefused?: Refused): void;
  /** Unregisters the address if registered on the current socket (best effort). */
  unregister(address: string): void;
  /** Throws ChatError INVALID when the frame would exceed the bridge's frame limit. */
  checkFrame(frame: object): void;
  route(address: string, handler: ((body: unknown) => void) | undefined): void;
  persist(entry: OutboxEntry): Promise<void>;
  unpersist(clientMsgId: string): void;
  /** A room that stops keeps its unacked entries for a later join of the same room. */
  giveBack(entries: OutboxEntry[]): void;
  upload(data: Blob | ArrayBuffer | ArrayBufferView, name: string, contentType?: string): Promise<FileRef>;
  catchingUp(room: string, missed: number): void;
  reportError(err: ChatError): void;
  forget(room: Room): void;
}

/**
 * What `chat.join` answers, as the host delivers it. `feedFrom`: with an authoritative feed, the
 * seq the feed continues after (a first join without since starts at the newest messages).
 */
type JoinResult = JoinReply & { feedFrom?: number };

interface Queued {
  entry: OutboxEntry;
  /** Resolved once the entry is in the outbox storage: no attempt goes out before. */
  stored: boolean;
  resolve?: (ack: SendAck) => void;
  reject?: (err: ChatError) => void;
}

const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function checkRoomName(name: string): void {
  if (typeof name !== 'string' || !ROOM_PATTERN.test(name)) {
    throw new ChatError('INVALID', `room: 1-64 letters, digits, "_" or "-" (got ${JSON.stringify(name)})`);
  }
}

export function toChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  return new ChatError('ERROR', err instanceof Error ? err.message : String(err), { cause: err });
}

/**
 * One joined room: merges live messages and join/history replies into one gap-free, duplicate-free
 * stream in seq order, and drains the room's outbox one message at a time.
 *
 * The cursor is the highest seq delivered; everything below it was delivered or is a hole that
 * history confirmed. A live message at cursor+1 is delivered at once; a higher one waits in the
 * buffer until the gap closes, or until `gapFillMs` passes and `chat.history` fills it.
 */
export class Room extends TypedEmitter<RoomEvents> {
  readonly name: string;
  /** Resolves after the first successful join; rejects if it fails. Internal. */
  readonly ready: Promise<void>;

  private readonly host: RoomHost;
  private readonly roomAddress: string;
  private readonly presenceAddress: string;
  private _state: RoomState = 'joining';
  private cursor: number | undefined;
  /** The server store's epoch as of the last join (undefined: not known, or a server without epochs). */
  private epoch: string | undefined;
  /** Epochs resynced away from: a late message of one of them is dropped, not a new resync. */
  private readonly oldEpochs = new Set<string>();
  private readonly buffer = new Map<number, ChatMessage>();
  private readonly held: ChatMessage[] = [];
  private _users: string[] = [];
  private resumeToken: string | undefined;
  private everJoined = false;
  /** Bumped on every join attempt, connection loss and leave: late results of older ones are ignored. */
  private gen = 0;
  private joinedNow = false;
  private joinAttempts = 0;
  private syncing = false;
  private syncAgain = false;
  private syncAttempts = 0;
  /** Authoritative feed: `synced` fires once the cursor reaches this seq (the join's lastSeq). */
  private syncTarget: number | undefined;
  private queue: Queued[] = [];
  private inFlight: { q: Queued } | undefined;
  private sendAttempts = 0;
  /** When the scheduled retry of the outbox's head goes (Date.now() time). */
  private sendRetryAt = 0;
  private gapTimer: Timer | undefined;
  private joinRetryTimer: Timer | undefined;
  private syncRetryTimer: Timer | undefined;
  private sendRetryTimer: Timer | undefined;
  private resolveReady!: () => void;
  private rejectReady!: (err: ChatError) => void;

  /** Internal: rooms are made by `ChatClient.join`. */
  constructor(host: RoomHost, name: string, options: { since?: number; stored?: OutboxEntry[] } = {}) {
    super();
    checkRoomName(name);
    this.host = host;
    this.name = name;
    this.roomAddress = `chat.room.${name}`;
    this.presenceAddress = `chat.presence.${name}`;
    if (options.since !== undefined) {
      if (!Number.isSafeInteger(options.since) || options.since < 0) {
        throw new ChatError('INVALID', 'since: a whole number ≥ 0');
      }
      this.cursor = options.since;
    }
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // for whoever waits for the join: maybe nobody
    const stored = [...(options.stored ?? [])].sort((a, b) => a.createdAt - b.createdAt);
    this.queue = stored.map((entry) => ({ entry, stored: true }));
    host.route(this.roomAddress, (body) => this.onLive(body));
    host.route(this.presenceAddress, (body) => this.onPresence(body));
  }

  // --- public API -------------------------------------------------------------------------

  get state(): RoomState {
    return this._state;
  }

  /** The messages held, in seq order (the newest `maxMessages`). */
  get messages(): readonly ChatMessage[] {
    return this.held;
  }

  /** The highest seq delivered (every lower one was delivered or does not exist); undefined before the first join. */
  get lastSeq(): number | undefined {
    return this.cursor;
  }

  /** The users present, as last published on `chat.presence.<room>`. */
  get users(): readonly string[] {
    return this._users;
  }

  /** The outbox entries of this room not yet acked by the server, oldest first. */
  get pending(): readonly OutboxEntry[] {
    return this.queue.map((q) => q.entry);
  }

  /**
   * Sends a text message. The message goes to the outbox first (so it survives a reload with a
   * persistent outbox) and resolves with the server's ack once stored. Offline, it waits for the
   * connection; it is retried with the same clientMsgId until the server answers for good.
   */
  send(text: string): Promise<SendAck> {
    if (typeof text !== 'string' || text.trim().length === 0) {
      return Promise.reject(new ChatError('INVALID', 'text: a message needs non-blank text'));
    }
    return this.enqueue({ text });
  }

  /**
   * Uploads a file (`POST /files`, multipart, part `file`), then sends a message referencing it,
   * with an optional caption. The upload itself is not retried; the message is, like `send`'s.
   */
  async sendFile(
    data: Blob | ArrayBuffer | ArrayBufferView,
    name: string,
    contentType?: string,
    options: { text?: string } = {},
  ): Promise<SendAck> {
    if (this._state === 'left') throw this.leftError();
    const ref = await this.host.upload(data, name, contentType);
    const text = options.text !== undefined && options.text.trim().length > 0 ? options.text : undefined;
    return this.enqueue({ file: ref, ...(text !== undefined ? { text } : {}) });
  }

  /** Older (or any) messages straight from `chat.history`, e.g. for scrolling back. Not delivered as events. */
  async fetchHistory(query: HistoryQuery): Promise<ChatMessage[]> {
    const reply = await this.host.request<{ messages?: unknown }>('chat.history', {
      room: this.name,
      limit: query.limit ?? this.host.settings.historyPageSize,
      ...(query.afterSeq !== undefined ? { afterSeq: query.afterSeq } : {}),
      ...(query.beforeSeq !== undefined ? { beforeSeq: query.beforeSeq } : {}),
    });
    return this.validMessages(reply?.messages);
  }

  /**
   * Leaves the room: unregisters, tells the server (best effort) and stops. Unacked messages are
   * rejected with ChatError CLOSED but stay in the outbox, to be sent on the next join of this
   * room, unless `discardPending` is set.
   */
  async leave(options: { discardPending?: boolean } = {}): Promise<void> {
    if (this._state === 'left') return;
    this.stop(new ChatError('CLOSED', `left room ${this.name}`), options.discardPending === true);
    this.host.forget(this);
    if (!this.host.isOpen()) return;
    try {
      await this.host.request('chat.leave', { room: this.name, user: this.host.user });
    } catch {
      // best effort: the bridge also leaves every room when the socket closes
    }
  }

  // --- connection lifecycle (called by the client) ------------------------------------------

  /** The connection is open (first time or again): register, then join with since. */
  onOpen(): void {
    if (this._state === 'left') return;
    this.startJoin();
  }

  /** The connection is gone: everything in flight is void; the next open rejoins. */
  onLost(): void {
    if (this._state === 'left') return;
    this.gen++;
    this.joinedNow = false;
    this.inFlight = undefined;
    this.syncing = false;
    this.clearTimers();
    if (this._state === 'joined') this.setState('rejoining');
  }

  /** Stops the room for good (leave, client close, a rejoin refused). */
  stop(err: ChatError, discardPending = false): void {
    if (this._state === 'left') return;
    this.gen++;
    this.joinedNow = false;
    this.inFlight = undefined;
    this.clearTimers();
    this.host.route(this.roomAddress, undefined);
    this.host.route(this.presenceAddress, undefined);
    this.host.unregister(this.roomAddress);
    this.host.unregister(this.presenceAddress);
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) {
      if (discardPending) this.host.unpersist(q.entry.clientMsgId);
      q.reject?.(err);
    }
    if (!discardPending) this.host.giveBack(queued.map((q) => q.entry));
    if (!this.everJoined) this.rejectReady(err);
    this.setState('left');
    if (queued.length > 0) this.emit('pending', this.pending);
  }

  // --- joining ------------------------------------------------------------------------------

  /** Joins without waiting: join() handles its own failures; anything else is reported. */
  private startJoin(): void {
    void this.join().catch((err: unknown) => this.host.reportError(toChatError(err)));
  }

  private async join(): Promise<void> {
    const gen = ++this.gen;
    this.joinedNow = false;
    this.syncing = false;
    this.inFlight = undefined;
    this.clearTimers();
    const rejoin = this.everJoined;
    const since = this.cursor;
    const target = this.maxBuffered();
    let reply: JoinResult;
    let joining = true;
    try {
      const refusal = (reason: string, message?: string): ChatError =>
        bridgeRefusal(`joining ${this.name}`, reason, message);
      let refusedRegistration: ChatError | undefined;
      // A registration refused after the join (it never is: the bridge answers frames in order)
      // would leave the room deaf: said, not swallowed.
      const onRefused: Refused = (reason, message) => {
        if (joining) refusedRegistration ??= refusal(reason, message);
        else this.host.reportError(refusal(reason, message));
      };
      // Register first: whatever is published from now on reaches us; the join covers the rest.
      // In token mode the bridge refuses all three for a room the token does not grant.
      this.host.register(this.roomAddress, onRefused);
      this.host.register(this.presenceAddress, onRefused);
      // The bridge answers a socket's frames in order: once chat.join is answered, so are both
      // registrations, and a join that fails then leaves no refusal of its frames in flight.
      try {
        reply = await this.host.request<JoinResult>(
          'chat.join',
          {
            room: this.name,
            user: this.host.user,
            ...(since !== undefined ? { since } : {}),
            ...(this.resumeToken !== undefined ? { resumeToken: this.resumeToken } : {}),
          },
          refusal,
        );
      } catch (err) {
        throw refusedRegistration ?? err;
      }
      if (refusedRegistration) throw refusedRegistration;
      if (gen !== this.gen) return;
      if (typeof reply !== 'object' || reply === null || typeof reply.lastSeq !== 'number') {
        throw new ChatError('INVALID', 'chat.join: malformed reply');
      }
    } catch (err) {
      if (gen !== this.gen) return;
      this.onJoinFailed(toChatError(err));
      return;
    } finally {
      joining = false;
    }
    this.joinAttempts = 0;
    if (typeof reply.resumeToken === 'string') this.resumeToken = reply.resumeToken;
    if (typeof reply.epoch === 'string') {
      if (this.epoch !== undefined && reply.epoch !== this.epoch && since !== undefined) {
        this.resync(reply.epoch);
        return;
      }
      this.epoch = reply.epoch;
    }
    const messages = this.validMessages(reply.messages);
    if (since !== undefined && reply.lastSeq > since) this.host.catchingUp(this.name, reply.lastSeq - since);
    if (since !== undefined && reply.lastSeq < since) {
      // Seqs are never reused, so this is a server whose store was reset: newer messages with
      // seqs we already passed would be taken for duplicates. Say so; the app may rejoin afresh.
      this.emit(
        'error',
        new ChatError(
          'INVALID',
          `room ${this.name}: the server's lastSeq ${reply.lastSeq} is below ours (${since})`,
        ),
      );
    }
    if (this.cursor === undefined) {
      // First join without since: the reply is the newest messages; older ones are history.
      this.cursor =
        typeof reply.feedFrom === 'number'
          ? reply.feedFrom
          : messages.length > 0
            ? messages[0]!.seq - 1
            : Math.max(0, reply.lastSeq);
      for (const seq of this.buffer.keys()) if (seq <= this.cursor) this.buffer.delete(seq);
    }
    this.joinedNow = true;
    this.everJoined = true;
    this.setState('joined');
    const feed = this.host.authoritativeFeed === true;
    // An authoritative feed's buffered messages all came from it, in order, after the join.
    this.deliverAuthoritative(
      messages,
      feed ? Number.MAX_SAFE_INTEGER : reply.truncated ? undefined : target,
    );
    this.emit('joined', { lastSeq: reply.lastSeq, rejoin });
    if (!rejoin) this.resolveReady();
    if (gen !== this.gen) return; // a listener left the room
    if (feed) {
      // the feed brings the rest by itself
      this.syncTarget = undefined;
      if (this.cursor >= reply.lastSeq) this.emit('synced', { seq: this.cursor });
      else this.syncTarget = reply.lastSeq;
    } else if (reply.truncated || reply.lastSeq > this.cursor || this.buffer.size > 0) this.requestSync();
    else this.emit('synced', { seq: this.cursor });
    this.pump();
  }

  private onJoinFailed(err: ChatError): void {
    if (err.failureType === 'DISCONNECTED') return; // rejoined when the connection is back
    if (!this.everJoined) {
      // The first join reports its failure to the caller of join().
      this.host.forget(this);
      this.stop(err);
      return;
    }
    if (err.retryable) {
      const delay = backoffDelay(this.joinAttempts++, this.host.settings.retry, this.host.settings.random);
      this.joinRetryTimer = setTimeout(() => {
        this.joinRetryTimer = undefined;
        if (this.host.isOpen()) this.startJoin();
      }, delay);
      return;
    }
    // e.g. 409: the name was taken by someone else meanwhile. The room cannot go on.
    this.emit('error', err);
    this.host.reportError(err);
    this.host.forget(this);
    this.stop(err);
  }

  // --- ordering -----------------------------------------------------------------------------

  private onLive(body: unknown): void {
    if (this._state === 'left' || !isChatMessage(body, this.name)) return;
    const m = body;
    if (typeof m.epoch === 'string' && this.epoch !== undefined && m.epoch !== this.epoch) {
      if (this.oldEpochs.has(m.epoch)) return;
      if (this.joinedNow) this.resync(m.epoch);
      return; // a join is under way: its reply decides
    }
    if (this.cursor === undefined) {
      this.buffer.set(m.seq, m); // before the first join reply: merged with it
      return;
    }
    if (m.seq <= this.cursor || this.buffer.has(m.seq)) return; // already delivered or waiting
    if (this.host.authoritativeFeed) {
      this.deliverAuthoritative([m], undefined);
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
    if (this.buffer.size > this.host.settings.maxBuffered) this.requestSync();
    else this.scheduleGapFill();
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
    this.emit('resync', { from, to });
    if (this._state !== 'left') this.startJoin();
  }

  private onPresence(body: unknown): void {
    if (this._state === 'left' || typeof body !== 'object' || body === null) return;
    const users = (body as Partial<PresenceUpdate>).users;
    if (!Array.isArray(users)) return;
    this._users = users.filter((u): u is string => typeof u === 'string');
    this.emit('presence', [...this._users]);
  }

  private deliver(m: ChatMessage): void {
    if (this._state === 'left') return; // a listener left the room meanwhile
    this.cursor = m.seq;
    this.buffer.delete(m.seq);
    this.held.push(m);
    const max = this.host.settings.maxMessages;
    if (this.held.length > max) this.held.splice(0, this.held.length - max);
    this.emit('message', m);
    if (this.syncTarget !== undefined && m.seq >= this.syncTarget && this.state !== 'left') {
      this.syncTarget = undefined;
      this.emit('synced', { seq: m.seq });
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

  /**
   * Merges an authoritative, ordered list (a join or history reply) into the stream. Seqs it
   * skips are holes the store confirmed, so the cursor moves past them. A buffered live message
   * below one of the list's is delivered first (never out of order, never lost). `target` is the
   * highest live seq seen before the request went out: when the list is the end of the room, those
   * messages were stored before the request, so nothing below them can still come.
   */
  private deliverAuthoritative(list: ChatMessage[], target: number | undefined): void {
    for (const m of list) {
      if (m.seq <= this.cursor!) continue;
      this.flushBuffered(m.seq - 1);
      if (m.seq > this.cursor!) this.deliver(m);
    }
    if (target !== undefined) this.flushBuffered(target);
    for (const seq of this.buffer.keys()) if (seq <= this.cursor!) this.buffer.delete(seq);
    this.drain();
  }

  private maxBuffered(): number | undefined {
    let max: number | undefined;
    for (const seq of this.buffer.keys()) if (max === undefined || seq > max) max = seq;
    return max;
  }

  private scheduleGapFill(): void {
    if (this.gapTimer !== undefined || this.syncing || !this.joinedNow) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      this.requestSync();
    }, this.host.settings.gapFillMs);
  }

  /** Pages `chat.history` from the cursor until the end (a page shorter than the limit). */
  private requestSync(): void {
    if (this.gapTimer !== undefined) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
    if (!this.joinedNow || this.syncRetryTimer !== undefined) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    void this.sync(this.gen).catch((err: unknown) => this.host.reportError(toChatError(err)));
  }

  private async sync(gen: number): Promise<void> {
    this.syncing = true;
    const limit = this.host.settings.historyPageSize;
    try {
      do {
        this.syncAgain = false;
        const target = this.maxBuffered();
        for (;;) {
          const before = this.cursor!;
          const reply = await this.host.request<{ messages?: unknown }>('chat.history', {
            room: this.name,
            afterSeq: before,
            limit,
          });
          if (gen !== this.gen) return;
          const page = this.validMessages(reply?.messages);
          const end = page.length < limit;
          this.deliverAuthoritative(page, end ? target : undefined);
          if (end || this.cursor === before) break;
        }
      } while (this.syncAgain && gen === this.gen);
      this.syncAttempts = 0;
      if (gen !== this.gen) return;
      if (this.buffer.size > 0) {
        this.syncing = false;
        this.scheduleGapFill();
      } else this.emit('synced', { seq: this.cursor! });
    } catch (err) {
      if (gen !== this.gen) return;
      const e = toChatError(err);
      if (e.failureType === 'DISCONNECTED') return;
      if (!e.retryable) this.emit('error', e);
      const delay = backoffDelay(this.syncAttempts++, this.host.settings.retry, this.host.settings.random);
      this.syncRetryTimer = setTimeout(() => {
        this.syncRetryTimer = undefined;
        this.requestSync();
      }, delay);
    } finally {
      if (gen === this.gen) this.syncing = false;
    }
  }

  private validMessages(list: unknown): ChatMessage[] {
    if (!Array.isArray(list)) return [];
    return list.filter((m): m is ChatMessage => isChatMessage(m, this.name)).sort((a, b) => a.seq - b.seq);
  }

  // --- outbox -------------------------------------------------------------------------------

  private enqueue(content: Pick<OutboxEntry, 'text' | 'file'>): Promise<SendAck> {
    if (this._state === 'left') return Promise.reject(this.leftError());
    const entry: OutboxEntry = {
      clientMsgId: uuid(),
      room: this.name,
      user: this.host.user,
      createdAt: Date.now(),
      ...content,
    };
    try {
      this.host.checkFrame(this.framedSend(entry));
    } catch (err) {
      return Promise.reject(toChatError(err));
    }
    return new Promise<SendAck>((resolve, reject) => {
      const q: Queued = { entry, stored: false, resolve, reject };
      this.queue.push(q); // queued at once, so the order is the order of the calls
      this.emit('pending', this.pending);
      void this.host
        .persist(entry)
        .then(() => {
          q.stored = true;
          this.pump();
        })
        .catch((err: unknown) => this.host.reportError(toChatError(err)));
    });
  }

  private sendBody(entry: OutboxEntry): object {
    return {
      room: entry.room,
      user: entry.user,
      clientMsgId: entry.clientMsgId,
      ...(entry.text !== undefined ? { text: entry.text } : {}),
      ...(entry.file !== undefined ? { file: { id: entry.file.id } } : {}),
    };
  }

  private framedSend(entry: OutboxEntry): object {
    // The reply address is a UUID: the frame measured is the frame sent.
    return { type: 'send', address: 'chat.send', body: this.sendBody(entry), replyAddress: uuid() };
  }

  /**
   * The server says its store is back (a `retry` control message): a send waiting to be retried
   * goes within `delayMs` instead of at the end of its backoff, whichever comes first.
   */
  retrySendWithin(delayMs: number): void {
    if (this.sendRetryTimer === undefined || this.sendRetryAt <= Date.now() + delayMs) return;
    clearTimeout(this.sendRetryTimer);
    this.sendAttempts = 0;
    this.scheduleSendRetry(delayMs);
  }

  private scheduleSendRetry(delayMs: number): void {
    this.sendRetryAt = Date.now() + delayMs;
    this.sendRetryTimer = setTimeout(() => {
      this.sendRetryTimer = undefined;
      this.pump();
    }, delayMs);
  }

  /** Sends the head of the outbox when nothing is in flight: one message at a time, in order. */
  private pump(): void {
    if (!this.joinedNow || this.inFlight || this.sendRetryTimer !== undefined) return;
    const q = this.queue[0];
    if (!q || !q.stored || !this.host.isOpen()) return;
    const attempt = { q };
    this.inFlight = attempt;
    this.host.request<SendAck>('chat.send', this.sendBody(q.entry)).then(
      (ack) => {
        if (this.inFlight === attempt) this.inFlight = undefined;
        if (!this.remove(q)) return;
        this.sendAttempts = 0;
        this.host.unpersist(q.entry.clientMsgId);
        q.resolve?.(ack);
        this.emit('sent', { entry: q.entry, ack });
        this.emit('pending', this.pending);
        this.pump();
      },
      (err: unknown) => {
        if (this.inFlight !== attempt) return; // the connection was lost meanwhile: resent after rejoin
        this.inFlight = undefined;
        if (!this.queue.includes(q)) return;
        const e = toChatError(err);
        if (e.retryable) {
          if (e.failureType === 'DISCONNECTED') return;
          const delay = sendRetryDelay(
            e,
            this.sendAttempts++,
            this.host.settings.retry,
            this.host.settings.random,
          );
          this.scheduleSendRetry(delay);
          return;
        }
        // Refused for good (400, 404, 500…): a retry would be refused again.
        this.remove(q);
        this.sendAttempts = 0;
        this.host.unpersist(q.entry.clientMsgId);
        if (q.reject) q.reject(e);
        else this.emit('error', e); // an entry from a previous session: nobody awaits it
        this.emit('sendFailed', { entry: q.entry, error: e });
        this.emit('pending', this.pending);
        this.pump();
      },
    );
  }

  private remove(q: Queued): boolean {
    const i = this.queue.indexOf(q);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  // --- helpers ------------------------------------------------------------------------------

  private setState(state: RoomState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }

  private leftError(): ChatError {
    return new ChatError('CLOSED', `room ${this.name} was left`);
  }

  private clearTimers(): void {
    for (const t of [this.gapTimer, this.joinRetryTimer, this.syncRetryTimer, this.sendRetryTimer]) {
      if (t !== undefined) clearTimeout(t);
    }
    this.gapTimer = this.joinRetryTimer = this.syncRetryTimer = this.sendRetryTimer = undefined;
  }
}
