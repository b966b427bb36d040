import { DEFAULT_MAX_FRAME_BYTES } from '@switchboard/protocol';
import { BusChannel } from './bus-channel.js';
import { BusRoomTransport } from './bus-room-transport.js';
import type { ChatClientOptions, ClientEvents, ConnectionState, WebSocketCtor } from './client-options.js';
import { Connection } from './connection.js';
import { controlOf } from './control.js';
import { TypedEmitter } from './emitter.js';
import { ChatError } from './errors.js';
import { MemoryOutbox } from './outbox.js';
import { OutboxKeeper } from './outbox-keeper.js';
import { checkRoomName, Room, type RoomHost } from './room.js';
import { uploadFile } from './upload.js';
import { clamp01, type Endpoints, endpointsOf, historyPageSize, positive } from './util.js';

export type {
  ChatClientOptions,
  ClientEvents,
  ConnectionState,
  FetchLike,
  FetchResponseLike,
  TokenSource,
  WebSocketCtor,
  WebSocketLike,
} from './client-options.js';

/**
 * A Switchboard chat client: one WebSocket to the bridge (`/eventbus/websocket`, Vert.x frames)
 * that reconnects with backoff, rejoins its rooms with `since`, replays what was missed in seq
 * order without duplicates, and resends unacked messages with their clientMsgIds.
 *
 * Its parts: the Connection (the socket's lifecycle and reconnections), the BusChannel (frames,
 * requests and registrations on the socket), and a Room per room (ordering and outbox).
 */
export class ChatClient extends TypedEmitter<ClientEvents> {
  readonly user: string;

  private readonly options: ChatClientOptions;
  private readonly random: () => number;
  private readonly connection: Connection;
  private readonly bus: BusChannel;
  private readonly host: RoomHost;
  private readonly rooms = new Map<string, Room>();
  private readonly outbox: OutboxKeeper;
  private _session: string | undefined;
  private _node: string | undefined;

  /** The endpoints of the server this client uses now (or will use next). */
  get endpoints(): Endpoints {
    return this.connection.endpoints;
  }

  constructor(options: ChatClientOptions) {
    super();
    if (typeof options.user !== 'string' || options.user.trim().length === 0) {
      throw new ChatError('CONFIG', 'user: required');
    }
    this.options = options;
    this.user = options.user;
    const urls = Array.isArray(options.url) ? options.url : [options.url];
    if (urls.length === 0) throw new ChatError('CONFIG', 'url: at least one URL');
    const endpoints = urls.map(endpointsOf);
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket ?? undefined;
    if (!impl) {
      throw new ChatError(
        'CONFIG',
        'No WebSocket implementation: this runtime has no global WebSocket. In Node, pass one: ' +
          "`import { WebSocket } from 'ws'; new ChatClient({ ..., WebSocket })`",
      );
    }
    this.outbox = new OutboxKeeper(options.outbox ?? new MemoryOutbox(), this.user, (err) =>
      this.reportError(err),
    );
    this.random = options.random ?? Math.random;
    const backoff = {
      baseMs: positive(options.reconnect?.baseMs, 250, 'reconnect.baseMs'),
      maxMs: positive(options.reconnect?.maxMs, 10_000, 'reconnect.maxMs'),
    };
    const drainJitterMs = positive(options.reconnect?.drainJitterMs, 1_000, 'reconnect.drainJitterMs', true);
    const heartbeatMs = positive(options.heartbeatMs, 5_000, 'heartbeatMs');
    const requestTimeoutMs = positive(options.requestTimeoutMs, 10_000, 'requestTimeoutMs');
    const connectTimeoutMs = positive(options.connectTimeoutMs, 10_000, 'connectTimeoutMs');
    const maxFrameBytes = positive(options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, 'maxFrameBytes');
    const emit = <K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]): void =>
      this.emit(event, payload);
    const random = this.random;
    this.connection = new Connection(
      {
        endpoints,
        WebSocket: impl,
        auth: options,
        backoff,
        drainJitterMs,
        heartbeatMs,
        connectTimeoutMs,
        random,
      },
      {
        emit,
        starting: () => this.outbox.preload(),
        send: (frame) => this.bus.send(frame),
        socketCreated: () => this.bus.newSocket(),
        established: () => {
          for (const room of [...this.rooms.values()]) {
            if (!this.connection.isOpen()) break;
            room.onOpen();
          }
        },
        frame: (frame) => this.bus.receive(frame),
        failRequests: (err) => this.bus.failPending(err),
        lost: () => {
          for (const room of [...this.rooms.values()]) room.onLost();
        },
      },
    );
    this.bus = new BusChannel({
      socket: () => this.connection.openSocket(),
      isOpen: () => this.connection.isOpen(),
      requestTimeoutMs,
      maxFrameBytes,
      control: (body) => this.onControl(body),
      refused: (reason, message) => this.connection.noteRefusal(reason, message),
      reportError: (err) => this.reportError(err),
    });
    this.host = this.makeHost(backoff);
  }

  // --- public API -------------------------------------------------------------------------

  get state(): ConnectionState {
    return this.connection.state;
  }

  /** The session id the server gave in its hello (undefined before). */
  get session(): string | undefined {
    return this._session;
  }

  /** The node serving the connection, from the hello. */
  get node(): string | undefined {
    return this._node;
  }

  /** The room of that name if joined (or joining). */
  room(name: string): Room | undefined {
    return this.rooms.get(name);
  }

  /** Every room joined (or joining). */
  get joinedRooms(): Room[] {
    return [...this.rooms.values()];
  }

  /**
   * Opens the connection. Resolves once the socket is open; failed attempts are retried with
   * backoff meanwhile (see the `state`, `reconnecting` and `error` events). Rejects when the
   * server refuses the client for good (close 1008: bad token…; 1009; 1000) or on `close()`.
   * After such a refusal, calling `connect()` again (e.g. with a fresh token from the `token`
   * function) resumes: the rooms are rejoined and the outbox is resent.
   */
  connect(): Promise<void> {
    return this.connection.connect();
  }

  /**
   * Joins a room: registers `chat.room.<room>` and `chat.presence.<room>`, then requests
   * `chat.join` (with `since` on rejoins). Resolves with the room once joined. Joining a room
   * already joined returns the same Room. Rejects with ChatError on a refusal (e.g.
   * RECIPIENT_FAILURE 409: the name is taken) or a timeout; a connection loss during the join
   * just retries after reconnecting.
   *
   * `since`: start after this seq (e.g. from a local cache) instead of the newest messages.
   */
  async join(name: string, options: { since?: number } = {}): Promise<Room> {
    checkRoomName(name);
    if (!this.connection.running) throw new ChatError('CLOSED', 'not connected: call connect() first');
    await this.outbox.load();
    if (!this.connection.running) throw new ChatError('CLOSED', 'the client was closed');
    let room = this.rooms.get(name);
    if (!room) {
      const stored = this.outbox.take(name);
      const transport = new BusRoomTransport(this.bus, name, () => this.connection.isOpen());
      room = new Room(this.host, transport, name, { ...options, stored });
      this.rooms.set(name, room);
      if (this.connection.isOpen()) room.onOpen();
    }
    await room.ready;
    return room;
  }

  /**
   * Closes the connection for good: no reconnection. Rooms stop; pending sends reject with
   * ChatError CLOSED but stay in the outbox storage (a persistent outbox resends them in the next
   * session, after the room is joined).
   */
  async close(): Promise<void> {
    this.connection.halt();
    const err = new ChatError('CLOSED', 'the client was closed');
    // Stopped while the socket is still there: their unregistrations go out.
    for (const room of [...this.rooms.values()]) room.stop(err);
    this.rooms.clear();
    await this.connection.close(err);
  }

  // --- internals ----------------------------------------------------------------------------

  private onControl(body: unknown): void {
    const control = controlOf(body);
    if (control?.kind === 'hello') {
      this._session = control.session;
      this._node = control.node;
      this.emit('hello', { session: this._session ?? '', node: this._node ?? '' });
    } else if (control?.kind === 'retry') {
      // The node's store is back: a send refused while it was not waits no longer than jitterMs.
      for (const room of this.rooms.values())
        room.retrySendWithin(Math.floor(clamp01(this.random()) * control.jitterMs));
    } else if (control?.kind === 'reconnect') {
      this.connection.drain(control.afterMs, control.jitterMs);
    }
  }

  private makeHost(retry: { baseMs: number; maxMs: number }): RoomHost {
    return {
      user: this.user,
      settings: {
        gapFillMs: positive(this.options.gapFillMs, 300, 'gapFillMs', true),
        historyPageSize: historyPageSize(this.options.historyPageSize),
        maxMessages: positive(this.options.maxMessages, 1_000, 'maxMessages'),
        maxBuffered: positive(this.options.maxBuffered, 1_000, 'maxBuffered'),
        retry,
        random: this.random,
      },
      persist: (entry) => this.outbox.persist(entry),
      unpersist: (clientMsgId) => this.outbox.unpersist(clientMsgId),
      giveBack: (entries) => this.outbox.giveBack(entries),
      upload: (data, name, contentType) =>
        uploadFile(this.options, () => this.endpoints.files, data, name, contentType),
      catchingUp: (room, missed) => this.emit('catchingUp', { room, missed }),
      reportError: (err) => this.reportError(err),
      forget: (room) => {
        if (this.rooms.get(room.name) === room) this.rooms.delete(room.name);
      },
    };
  }

  private reportError(err: ChatError): void {
    this.emit('error', err);
  }
}
