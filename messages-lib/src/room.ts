import { isRoomName, ROOM_NAME_RULE } from '@switchboard/protocol';
import { TypedEmitter } from './emitter.js';
import { ChatError, toChatError } from './errors.js';
import type { OutboxEntry } from './outbox.js';
import { OutboxSender } from './outbox-sender.js';
import { JoinAttempt } from './room-join.js';
import { messagesOf, RoomSequencer } from './room-sequencer.js';
import type {
  HistoryQuery,
  JoinResult,
  RoomEvents,
  RoomHost,
  RoomState,
  RoomTransport,
} from './room-types.js';
import type { ChatMessage, PresenceUpdate, SendAck } from './types.js';
import { backoffDelay, type Timer } from './util.js';

export type { HistoryQuery, RoomEvents, RoomHost, RoomState, RoomTransport } from './room-types.js';

export function checkRoomName(name: string): void {
  if (!isRoomName(name)) {
    throw new ChatError('INVALID', `room: ${ROOM_NAME_RULE} (got ${JSON.stringify(name)})`);
  }
}

/**
 * One joined room: merges live messages and join/history replies into one gap-free, duplicate-free
 * stream in seq order (its RoomSequencer), and drains the room's outbox one message at a time (its
 * OutboxSender). The room itself joins, rejoins after every connection loss, and leaves.
 */
export class Room extends TypedEmitter<RoomEvents> {
  readonly name: string;
  /** Resolves after the first successful join; rejects if it fails. Internal. */
  readonly ready: Promise<void>;

  private readonly host: RoomHost;
  private readonly transport: RoomTransport;
  private readonly seq: RoomSequencer;
  private readonly sender: OutboxSender;
  private _state: RoomState = 'joining';
  private _users: string[] = [];
  private resumeToken: string | undefined;
  private everJoined = false;
  /** Bumped on every join attempt, connection loss and leave: late results of older ones are ignored. */
  private gen = 0;
  private joinedNow = false;
  private joinAttempts = 0;
  private joinRetryTimer: Timer | undefined;
  private resolveReady!: () => void;
  private rejectReady!: (err: ChatError) => void;

  /** Internal: rooms are made by `ChatClient.join`. */
  constructor(
    host: RoomHost,
    transport: RoomTransport,
    name: string,
    options: { since?: number; stored?: OutboxEntry[] } = {},
  ) {
    super();
    checkRoomName(name);
    this.host = host;
    this.transport = transport;
    this.name = name;
    if (options.since !== undefined) {
      if (!Number.isSafeInteger(options.since) || options.since < 0) {
        throw new ChatError('INVALID', 'since: a whole number ≥ 0');
      }
    }
    const emit = <K extends keyof RoomEvents>(event: K, payload: RoomEvents[K]): void =>
      this.emit(event, payload);
    const joined = (): boolean => this.joinedNow;
    this.seq = new RoomSequencer(
      {
        room: name,
        host,
        transport,
        emit,
        joined,
        left: () => this._state === 'left',
        rejoin: () => {
          if (this._state !== 'left') this.startJoin();
        },
      },
      options.since,
    );
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // for whoever waits for the join: maybe nobody
    this.sender = new OutboxSender({ room: name, host, transport, emit, joined }, options.stored ?? []);
    transport.listen({ message: (body) => this.seq.onLive(body), presence: (body) => this.onPresence(body) });
  }

  // --- public API -------------------------------------------------------------------------

  get state(): RoomState {
    return this._state;
  }

  /** The messages held, in seq order (the newest `maxMessages`). */
  get messages(): readonly ChatMessage[] {
    return this.seq.messages;
  }

  /** The highest seq delivered (every lower one was delivered or does not exist); undefined before the first join. */
  get lastSeq(): number | undefined {
    return this.seq.lastSeq;
  }

  /** The users present, as last published on `chat.presence.<room>`. */
  get users(): readonly string[] {
    return this._users;
  }

  /** The outbox entries of this room not yet acked by the server, oldest first. */
  get pending(): readonly OutboxEntry[] {
    return this.sender.pending;
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
    const reply = await this.transport.history({
      room: this.name,
      limit: query.limit ?? this.host.settings.historyPageSize,
      ...(query.afterSeq !== undefined ? { afterSeq: query.afterSeq } : {}),
      ...(query.beforeSeq !== undefined ? { beforeSeq: query.beforeSeq } : {}),
    });
    return messagesOf(reply?.messages, this.name);
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
    if (!this.transport.isOpen()) return;
    try {
      await this.transport.leave({ room: this.name, user: this.host.user });
    } catch {
      // best effort: the bridge also leaves every room when the socket closes
    }
  }

  /**
   * The server says its store is back (a `retry` control message): a send waiting to be retried
   * goes within `delayMs` instead of at the end of its backoff, whichever comes first.
   */
  retrySendWithin(delayMs: number): void {
    this.sender.retryWithin(delayMs);
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
    this.halt();
    if (this._state === 'joined') this.setState('rejoining');
  }

  /** Stops the room for good (leave, client close, a rejoin refused). */
  stop(err: ChatError, discardPending = false): void {
    if (this._state === 'left') return;
    this.halt();
    this.transport.listen(undefined);
    this.transport.stopFeed();
    const hadPending = this.sender.clear(err, discardPending);
    if (!this.everJoined) this.rejectReady(err);
    this.setState('left');
    if (hadPending) this.emit('pending', this.pending);
  }

  // --- joining ------------------------------------------------------------------------------

  /** Joins without waiting: join() handles its own failures; anything else is reported. */
  private startJoin(): void {
    void this.join().catch((err: unknown) => this.host.reportError(toChatError(err)));
  }

  private async join(): Promise<void> {
    const gen = this.halt();
    const rejoin = this.everJoined;
    const since = this.seq.lastSeq;
    const target = this.seq.highestBuffered();
    const attempt = new JoinAttempt(this.host, this.transport, this.name);
    let reply: JoinResult;
    try {
      reply = await attempt.request({
        ...(since !== undefined ? { since } : {}),
        ...(this.resumeToken !== undefined ? { resumeToken: this.resumeToken } : {}),
      });
      attempt.check(reply);
      if (gen !== this.gen) return;
    } catch (err) {
      if (gen !== this.gen) return;
      this.onJoinFailed(toChatError(attempt.failure(err)));
      return;
    } finally {
      attempt.end();
    }
    this.joinAttempts = 0;
    if (typeof reply.resumeToken === 'string') this.resumeToken = reply.resumeToken;
    if (!this.seq.adoptEpoch(reply.epoch, since)) return;
    const messages = messagesOf(reply.messages, this.name);
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
    this.seq.anchor(reply, messages);
    this.joinedNow = true;
    this.everJoined = true;
    this.setState('joined');
    const feed = this.transport.authoritativeFeed;
    // An authoritative feed's buffered messages all came from it, in order, after the join.
    this.seq.merge(messages, feed ? Number.MAX_SAFE_INTEGER : reply.truncated ? undefined : target);
    this.emit('joined', { lastSeq: reply.lastSeq, rejoin });
    if (!rejoin) this.resolveReady();
    if (gen !== this.gen) return; // a listener left the room
    this.seq.catchUp(reply);
    this.sender.pump();
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
        if (this.transport.isOpen()) this.startJoin();
      }, delay);
      return;
    }
    // e.g. 409: the name was taken by someone else meanwhile. The room cannot go on.
    this.emit('error', err);
    this.host.reportError(err);
    this.host.forget(this);
    this.stop(err);
  }

  /**
   * A join starts, the connection is lost, or the room stops: whatever was under way (a join, a
   * send, a history sync, their retry timers) is void. Returns the new generation.
   */
  private halt(): number {
    const gen = ++this.gen;
    this.joinedNow = false;
    this.sender.halt();
    this.seq.halt();
    if (this.joinRetryTimer !== undefined) clearTimeout(this.joinRetryTimer);
    this.joinRetryTimer = undefined;
    return gen;
  }

  // --- presence and helpers -------------------------------------------------------------------

  private onPresence(body: unknown): void {
    if (this._state === 'left' || typeof body !== 'object' || body === null) return;
    const users = (body as Partial<PresenceUpdate>).users;
    if (!Array.isArray(users)) return;
    this._users = users.filter((u): u is string => typeof u === 'string');
    this.emit('presence', [...this._users]);
  }

  private enqueue(content: Pick<OutboxEntry, 'text' | 'file'>): Promise<SendAck> {
    if (this._state === 'left') return Promise.reject(this.leftError());
    return this.sender.enqueue(content);
  }

  private setState(state: RoomState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }

  private leftError(): ChatError {
    return new ChatError('CLOSED', `room ${this.name} was left`);
  }
}
