import { TypedEmitter } from './emitter.js';
import { ChatError, type FailureType, toChatError } from './errors.js';
import { MemoryOutbox, type OutboxStorage } from './outbox.js';
import { OutboxKeeper } from './outbox-keeper.js';
import { bridgeRefusal, type Refusal, refusalOf, type Refused } from './refusal.js';
import { checkRoomName, Room, type RoomHost } from './room.js';
import { CONTROL_ADDRESS, type FileRef, type ServerFrame } from './types.js';
import {
  backoffDelay,
  clamp01,
  type Endpoints,
  endpointsOf,
  positive,
  type Timer,
  utf8Length,
  uuid,
} from './util.js';

/**
 * The part of the WebSocket API the client uses. The browser's `WebSocket` and the `ws` package's
 * both fit. Handlers are assigned as `onopen`/`onmessage`/`onclose`/`onerror`.
 */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drops the connection without the closing handshake. */
  terminate?(): void;
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
  onerror: unknown;
}

export type WebSocketCtor = new (url: string) => WebSocketLike;

/** The part of a fetch Response `sendFile` reads. */
export interface FetchResponseLike {
  readonly ok: boolean;
  readonly status: number;
  json(): Promise<unknown>;
}

/** The part of `fetch` that `sendFile` uses; the global `fetch` fits. */
export type FetchLike = (
  url: string,
  init: { method: string; body: FormData; headers: Record<string, string> },
) => Promise<FetchResponseLike>;

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface ChatClientOptions {
  /**
   * The server: `http(s)://host:port` or `ws(s)://…`, optionally with a path prefix. Usually one
   * load-balanced URL; a list of nodes is tried in turn, the next one on every new connection.
   */
  url: string | string[];
  /** The user name (open mode); in token mode the server takes the user from the token. */
  user: string;
  /** A JWT, or a function returning one (called before every connection attempt). Sent as `?token=`. */
  token?: TokenSource;
  /** The WebSocket implementation: default `globalThis.WebSocket`; in Node 20 pass `ws`'s `WebSocket`. */
  WebSocket?: WebSocketCtor;
  /** For `sendFile`; default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Where unacked messages are kept; default in memory. `LocalStorageOutbox` survives reloads. */
  outbox?: OutboxStorage;
  /**
   * Reconnection: exponential backoff with full jitter, `random(0, min(maxMs, baseMs·2^attempt))`.
   * `drainJitterMs` spreads reconnections after a server drain (control `reconnect`, close 1012).
   */
  reconnect?: { baseMs?: number; maxMs?: number; drainJitterMs?: number };
  /** Ping interval; the link is considered dead after two intervals without any frame. Default 5 000. */
  heartbeatMs?: number;
  /** How long a request waits for its reply. Default 10 000. */
  requestTimeoutMs?: number;
  /** How long opening a connection (handshake and the server's hello) may take. Default 10 000. */
  connectTimeoutMs?: number;
  /** How long a gap in the live stream may stay open before `chat.history` fills it. Default 300. */
  gapFillMs?: number;
  /** `limit` of the history requests that catch up (at most 500, the server's limit). Default 500. */
  historyPageSize?: number;
  /** Messages kept per room in `room.messages`. Default 1 000. */
  maxMessages?: number;
  /** Out-of-order messages buffered per room before a history fill is forced. Default 1 000. */
  maxBuffered?: number;
  /** The bridge's frame limit: larger sends are refused locally. Default 65 536 bytes. */
  maxFrameBytes?: number;
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}

export interface ClientEvents {
  state: ConnectionState;
  /** Errors nobody awaits: refused frames, fatal closes, rejoins refused, storage failures. */
  error: ChatError;
  /** A rejoin found `missed` messages newer than what the room held; they are being replayed. */
  catchingUp: { room: string; missed: number };
  /** The server's hello: the connection's session id and the node serving it. */
  hello: { session: string; node: string };
  /** The connection closed (any reason, including local detection of a dead link). */
  disconnected: { code: number; reason: string };
  /**
   * A reconnection is scheduled in `delayMs`. `attempt` counts consecutive failures from 0 (it
   * is reset once the server sends a frame); after a drain (1012) the delay is the server's
   * `afterMs` plus jitter instead of the backoff.
   */
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
}

interface PendingRequest {
  address: string;
  resolve: (body: unknown) => void;
  reject: (err: ChatError) => void;
  timer: Timer;
  /** The error the request fails with when the bridge refuses its frame. */
  refusal: (reason: string, message?: string) => ChatError;
}

const OPEN = 1;
/** Close codes after which the client does not reconnect (docs/protocol.md). */
const CLOSE_NORMAL = 1000;
const CLOSE_POLICY = 1008;
const CLOSE_TOO_BIG = 1009;
const CLOSE_SERVICE_RESTART = 1012;
/**
 * Consecutive 1012s (a draining node refusing the connection) retried within the drain jitter
 * rather than the backoff: the next connection most likely reaches another node. After these, the
 * backoff takes over, so a cluster that is shutting down as a whole is not hammered.
 */
const FAST_DRAIN_RETRIES = 3;
/** Local stand-in when the socket is dropped by us (dead link, handshake timeout). */
const CLOSE_ABNORMAL = 1006;

/**
 * A Switchboard chat client: one WebSocket to the bridge (`/eventbus/websocket`, Vert.x frames)
 * that reconnects with backoff, rejoins its rooms with `since`, replays what was missed in seq
 * order without duplicates, and resends unacked messages with their clientMsgIds.
 */
export class ChatClient extends TypedEmitter<ClientEvents> {
  readonly user: string;
  private readonly endpointList: Endpoints[];
  private endpointIndex = 0;

  private readonly options: ChatClientOptions;
  private readonly WebSocketImpl: WebSocketCtor;
  private readonly random: () => number;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly drainJitterMs: number;
  private readonly heartbeatMs: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxFrameBytes: number;
  private readonly host: RoomHost;

  private _state: ConnectionState = 'closed';
  /** connect() was called and neither close() nor a fatal close happened since. */
  private running = false;
  private everOpened = false;
  private ws: WebSocketLike | undefined;
  private attempt = 0;
  private lastFrameAt = 0;
  private drainAt: number | undefined;
  private lastBridgeError: { body: string; message?: string } | undefined;
  private reconnectTimer: Timer | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private connectTimer: Timer | undefined;
  private drainTimer: Timer | undefined;
  private readonly pending = new Map<string, PendingRequest>();
  private readonly handlers = new Map<string, (body: unknown) => void>();
  /** Addresses registered on the current socket, with whom to tell if the bridge refuses one. */
  private readonly registeredHere = new Map<string, Refused | undefined>();
  /** Bumped by every connection attempt: an attempt overtaken by another one gives up. */
  private openGen = 0;
  private readonly rooms = new Map<string, Room>();
  private connectWaiters: { resolve: () => void; reject: (err: ChatError) => void }[] = [];
  private readonly outbox: OutboxKeeper;
  private _session: string | undefined;
  private _node: string | undefined;

  /** The endpoints of the server this client uses now (or will use next). */
  get endpoints(): Endpoints {
    return this.endpointList[this.endpointIndex]!;
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
    this.endpointList = urls.map(endpointsOf);
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket ?? undefined;
    if (!impl) {
      throw new ChatError(
        'CONFIG',
        'No WebSocket implementation: this runtime has no global WebSocket. In Node, pass one: ' +
          "`import { WebSocket } from 'ws'; new ChatClient({ ..., WebSocket })`",
      );
    }
    this.WebSocketImpl = impl;
    this.outbox = new OutboxKeeper(options.outbox ?? new MemoryOutbox(), this.user, (err) =>
      this.reportError(err),
    );
    this.random = options.random ?? Math.random;
    this.backoff = {
      baseMs: positive(options.reconnect?.baseMs, 250, 'reconnect.baseMs'),
      maxMs: positive(options.reconnect?.maxMs, 10_000, 'reconnect.maxMs'),
    };
    this.drainJitterMs = positive(options.reconnect?.drainJitterMs, 1_000, 'reconnect.drainJitterMs', true);
    this.heartbeatMs = positive(options.heartbeatMs, 5_000, 'heartbeatMs');
    this.requestTimeoutMs = positive(options.requestTimeoutMs, 10_000, 'requestTimeoutMs');
    this.connectTimeoutMs = positive(options.connectTimeoutMs, 10_000, 'connectTimeoutMs');
    this.maxFrameBytes = positive(options.maxFrameBytes, 65_536, 'maxFrameBytes');
    this.host = this.makeHost();
  }

  // --- public API -------------------------------------------------------------------------

  get state(): ConnectionState {
    return this._state;
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
    if (this._state === 'open') return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.running) {
      this.running = true;
      this.everOpened = false;
      this.attempt = 0;
      this.lastBridgeError = undefined;
      this.outbox.preload();
      this.setState('connecting');
      this.open();
    }
    return done;
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
    if (!this.running) throw new ChatError('CLOSED', 'not connected: call connect() first');
    await this.outbox.load();
    if (!this.running) throw new ChatError('CLOSED', 'the client was closed');
    let room = this.rooms.get(name);
    if (!room) {
      const stored = this.outbox.take(name);
      room = new Room(this.host, name, { ...options, stored });
      this.rooms.set(name, room);
      if (this.isOpen()) room.onOpen();
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
    this.running = false;
    this.clearTimers();
    const err = new ChatError('CLOSED', 'the client was closed');
    for (const room of [...this.rooms.values()]) room.stop(err);
    this.rooms.clear();
    this.rejectConnect(err);
    const ws = this.ws;
    this.ws = undefined;
    this.failPending(err);
    this.setState('closed');
    if (ws) await closeSocket(ws, CLOSE_NORMAL, 'client closed');
  }

  // --- connection -------------------------------------------------------------------------

  private isOpen(): boolean {
    return this._state === 'open' && this.ws !== undefined && this.ws.readyState === OPEN;
  }

  /** Opens a socket in the background: its failures are reported, or end in a reconnect. */
  private open(): void {
    void this.openSocket().catch((err: unknown) => this.reportError(toChatError(err)));
  }

  private async openSocket(): Promise<void> {
    this.reconnectTimer = undefined;
    const gen = ++this.openGen;
    // Each new connection after the first moves on to the next node of the list.
    if (gen > 1) this.endpointIndex = (this.endpointIndex + 1) % this.endpointList.length;
    let url = this.endpoints.websocket;
    try {
      const token =
        typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
      if (token) url += `?token=${encodeURIComponent(token)}`;
    } catch (err) {
      if (gen !== this.openGen || !this.running) return;
      this.reportError(new ChatError('AUTH', `the token function failed: ${String(err)}`, { cause: err }));
      this.scheduleReconnect(CLOSE_ABNORMAL, 'token function failed');
      return;
    }
    if (gen !== this.openGen || !this.running || this.ws) return;
    let ws: WebSocketLike;
    try {
      ws = new this.WebSocketImpl(url);
    } catch (err) {
      this.fatal(
        new ChatError('CONFIG', `cannot open a WebSocket to ${url}: ${String(err)}`, { cause: err }),
      );
      return;
    }
    this.ws = ws;
    this.registeredHere.clear();
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // not settable on every WebSocket implementation; the bridge sends text frames
    }
    this.connectTimer = setTimeout(() => {
      this.connectTimer = undefined;
      if (this.ws === ws) this.dropSocket(CLOSE_ABNORMAL, 'connect timeout');
    }, this.connectTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      // Open is not yet accepted: a refusing server (bad token, draining) still answers the
      // upgrade, then sends an err frame and closes. The hello (or the pong to this ping) proves
      // a live session; only then is the connection 'open'.
      this.lastFrameAt = Date.now();
      try {
        this.ping();
      } catch {
        // closed meanwhile: its close event follows
      }
    };
    ws.onmessage = (ev: { data?: unknown }) => {
      if (this.ws === ws) this.onData(ev.data);
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (this.ws === ws) this.onClosed(ev.code ?? CLOSE_ABNORMAL, ev.reason ?? '');
    };
    ws.onerror = () => {}; // a close event follows
  }

  /** The server answered on a new socket: the session is live. */
  private onEstablished(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.lastFrameAt = Date.now();
    this.everOpened = true;
    this.setState('open');
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
    for (const room of [...this.rooms.values()]) {
      if (!this.isOpen()) break;
      room.onOpen();
    }
  }

  private heartbeat(): void {
    if (!this.ws) return;
    if (Date.now() - this.lastFrameAt >= 2 * this.heartbeatMs) {
      this.dropSocket(CLOSE_ABNORMAL, 'heartbeat timeout: no frame from the server');
      return;
    }
    // The connection survived an interval: the next failure starts the backoff afresh (a node
    // that accepts and then drops at once keeps the backoff growing).
    this.attempt = 0;
    try {
      this.ping();
    } catch {
      // closing: its close event follows
    }
  }

  private ping(): void {
    this.sendFrame({ type: 'ping' });
  }

  /** Abandons the current socket at once (a dead link may take minutes to report its close). */
  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = undefined;
    void closeSocket(ws, CLOSE_NORMAL, reason, true).catch((err: unknown) =>
      this.reportError(toChatError(err)),
    );
    this.onClosed(code, reason);
  }

  private onClosed(code: number, reason: string): void {
    this.ws = undefined;
    this.clearTimers();
    this.failPending(
      new ChatError('DISCONNECTED', `connection closed (${code}${reason ? ` ${reason}` : ''})`),
    );
    for (const room of [...this.rooms.values()]) room.onLost();
    this.emit('disconnected', { code, reason });
    if (!this.running) return;
    if (code === CLOSE_POLICY) {
      const refused = this.lastBridgeError;
      this.fatal(
        new ChatError(
          'AUTH',
          `the server refused the connection (1008${reason ? ` ${reason}` : ''})` +
            (refused ? `: ${refused.body}${refused.message ? ` (${refused.message})` : ''}` : ''),
          { code, reason: refused?.body ?? reason },
        ),
      );
    } else if (code === CLOSE_TOO_BIG) {
      this.fatal(
        new ChatError('CLOSED', `the server closed the connection: frame too large (1009)`, { code }),
      );
    } else if (code === CLOSE_NORMAL) {
      this.fatal(
        new ChatError('CLOSED', `the server closed the connection (1000${reason ? ` ${reason}` : ''})`, {
          code,
        }),
      );
    } else {
      this.scheduleReconnect(code, reason);
    }
  }

  /** No reconnection: state closed, the error reported; rooms and outbox kept for a later connect(). */
  private fatal(err: ChatError): void {
    this.running = false;
    this.clearTimers();
    this.setState('closed');
    this.reportError(err);
    this.rejectConnect(err);
  }

  private scheduleReconnect(code: number, reason: string): void {
    let delayMs: number;
    const attempt = this.attempt;
    if (this.drainAt !== undefined) {
      delayMs = Math.max(0, this.drainAt - Date.now());
      this.drainAt = undefined;
    } else if (code === CLOSE_SERVICE_RESTART && attempt < FAST_DRAIN_RETRIES) {
      delayMs = Math.floor(clamp01(this.random()) * this.drainJitterMs);
      this.attempt++;
    } else {
      delayMs = backoffDelay(attempt, this.backoff, this.random);
      this.attempt++;
    }
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    this.emit('reconnecting', { attempt, delayMs, code, reason });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delayMs);
  }

  private onData(data: unknown): void {
    this.lastFrameAt = Date.now();
    let text: string;
    if (typeof data === 'string') text = data;
    else if (data instanceof ArrayBuffer) text = new TextDecoder().decode(data);
    else if (ArrayBuffer.isView(data))
      text = new TextDecoder().decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null) return;
    if ((frame.type === 'pong' || frame.type === 'rec') && this._state !== 'open') this.onEstablished();
    switch (frame.type) {
      case 'pong':
        return; // the link is alive: lastFrameAt says so
      case 'rec':
        return this.onRec(frame);
      case 'err':
        return this.onErr(frame);
    }
  }

  private onRec(frame: ServerFrame): void {
    const address = frame.address;
    if (typeof address !== 'string') return;
    if (address === CONTROL_ADDRESS) return this.onControl(frame.body);
    const pending = this.pending.get(address);
    if (pending) {
      this.pending.delete(address);
      clearTimeout(pending.timer);
      pending.resolve(frame.body);
      return;
    }
    this.handlers.get(address)?.(frame.body);
  }

  private onErr(frame: ServerFrame): void {
    const refusal = refusalOf(frame, (address) => this.pending.has(address));
    if (!refusal) {
      // A reply failure: its top-level `address` is the request's replyAddress (a late one, for a
      // request that already timed out, is dropped).
      const address = frame.address!;
      const pending = this.pending.get(address);
      if (!pending) return;
      this.pending.delete(address);
      clearTimeout(pending.timer);
      pending.reject(replyFailure(frame, pending.address));
      return;
    }
    const { reason, message } = refusal;
    this.lastBridgeError = { body: reason, ...(message !== undefined ? { message } : {}) };
    if (this.attribute(refusal)) return;
    this.reportError(
      new ChatError('BRIDGE', `the bridge refused a frame: ${reason}${message ? ` (${message})` : ''}`, {
        reason,
      }),
    );
  }

  /**
   * Hands a refusal to the operation whose frame it names: a request by its replyAddress, a
   * registration by its address. False when it names nothing of ours (or nothing at all).
   */
  private attribute(refusal: Refusal): boolean {
    // A frame over the rate is dropped unread, and its refusal names nothing. Were one named, the
    // request would still rather time out and be retried than fail for good.
    if (refusal.reason === 'rate_limited') return false;
    const { reason, message, address, replyAddress } = refusal;
    const pending = replyAddress !== undefined ? this.pending.get(replyAddress) : undefined;
    if (pending) {
      this.pending.delete(replyAddress!);
      clearTimeout(pending.timer);
      pending.reject(pending.refusal(reason, message));
      return true;
    }
    if (address === undefined || !this.registeredHere.has(address)) return false;
    const onRefused = this.registeredHere.get(address);
    // Not registered after all: the next registration of the address is sent again.
    this.registeredHere.delete(address);
    if (!onRefused) return false;
    onRefused(reason, message);
    return true;
  }

  private onControl(body: unknown): void {
    if (typeof body !== 'object' || body === null) return;
    const control = body as {
      kind?: unknown;
      session?: unknown;
      node?: unknown;
      afterMs?: unknown;
      jitterMs?: unknown;
    };
    if (control.kind === 'hello') {
      this._session = typeof control.session === 'string' ? control.session : undefined;
      this._node = typeof control.node === 'string' ? control.node : undefined;
      this.emit('hello', { session: this._session ?? '', node: this._node ?? '' });
    } else if (control.kind === 'retry') {
      // The node's store is back: a send refused while it was not waits no longer than jitterMs.
      const jitterMs =
        typeof control.jitterMs === 'number' && Number.isFinite(control.jitterMs)
          ? Math.min(Math.max(0, control.jitterMs), 60_000)
          : 1_000;
      for (const room of this.rooms.values())
        room.retrySendWithin(Math.floor(clamp01(this.random()) * jitterMs));
    } else if (control.kind === 'reconnect') {
      // The node drains: reconnect (to any node) after afterMs plus jitter, so clients spread out.
      // A server that spreads its requests itself says how much jitter to add (Switchboard: 0).
      const bounded = (v: unknown, fallback: number): number =>
        typeof v === 'number' && Number.isFinite(v) ? Math.min(Math.max(0, v), 60_000) : fallback;
      const afterMs = bounded(control.afterMs, 0);
      const jitterMs = bounded(control.jitterMs, this.drainJitterMs);
      this.drainAt = Date.now() + afterMs + Math.floor(clamp01(this.random()) * jitterMs);
      const ws = this.ws;
      clearTimeout(this.drainTimer);
      // The server closes with 1012 right after; if it does not, leave by ourselves.
      this.drainTimer = setTimeout(
        () => {
          this.drainTimer = undefined;
          if (this.ws === ws) this.dropSocket(CLOSE_SERVICE_RESTART, 'reconnect requested by the server');
        },
        Math.max(0, this.drainAt - Date.now()),
      );
    }
  }

  // --- requests ----------------------------------------------------------------------------

  private sendFrame(frame: object): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) throw new ChatError('DISCONNECTED', 'not connected');
    const text = this.serialize(frame);
    ws.send(text);
  }

  private serialize(frame: object): string {
    const text = JSON.stringify(frame);
    const size = utf8Length(text);
    if (size > this.maxFrameBytes) {
      throw new ChatError(
        'INVALID',
        `the frame would be ${size} bytes; the bridge takes at most ${this.maxFrameBytes}`,
        {
          reason: 'frame_too_large',
        },
      );
    }
    return text;
  }

  private request<T>(
    address: string,
    body: unknown,
    refusal: PendingRequest['refusal'] = (reason, message) => bridgeRefusal(address, reason, message),
  ): Promise<T> {
    if (!this.isOpen()) return Promise.reject(new ChatError('DISCONNECTED', 'not connected'));
    const replyAddress = uuid();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(replyAddress);
        reject(new ChatError('TIMEOUT', `no reply from ${address} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(replyAddress, {
        address,
        resolve: resolve as (b: unknown) => void,
        reject,
        timer,
        refusal,
      });
      try {
        this.sendFrame({ type: 'send', address, body, replyAddress });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(replyAddress);
        reject(err instanceof ChatError ? err : new ChatError('DISCONNECTED', String(err), { cause: err }));
      }
    });
  }

  private failPending(err: ChatError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  // --- files ------------------------------------------------------------------------------

  private async upload(
    data: Blob | ArrayBuffer | ArrayBufferView,
    name: string,
    contentType?: string,
  ): Promise<FileRef> {
    const fetchImpl = this.options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!fetchImpl) throw new ChatError('CONFIG', 'sendFile needs fetch: pass `fetch` in the options');
    if (typeof FormData === 'undefined' || typeof Blob === 'undefined') {
      throw new ChatError('CONFIG', 'sendFile needs FormData and Blob (Node ≥ 18 or a browser)');
    }
    if (typeof name !== 'string' || name.length === 0) throw new ChatError('INVALID', 'file name: required');
    const form = new FormData();
    form.append('file', toBlob(data, contentType), name);
    const headers: Record<string, string> = {};
    const token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let res: FetchResponseLike;
    try {
      res = await fetchImpl(this.endpoints.files, { method: 'POST', body: form, headers });
    } catch (err) {
      throw new ChatError('UPLOAD', `upload failed: ${String(err)}`, { code: 0, cause: err });
    }
    let payload: unknown;
    try {
      payload = await res.json();
    } catch {
      payload = undefined;
    }
    if (!res.ok) {
      const p = (payload ?? {}) as { error?: unknown; message?: unknown };
      throw new ChatError(
        'UPLOAD',
        `upload refused (HTTP ${res.status})${typeof p.message === 'string' ? `: ${p.message}` : ''}`,
        { code: res.status, ...(typeof p.error === 'string' ? { reason: p.error } : {}) },
      );
    }
    const ref = payload as Partial<FileRef> | undefined;
    if (!ref || typeof ref.id !== 'string') {
      throw new ChatError('UPLOAD', 'upload: the server answered without a file id', { code: res.status });
    }
    return ref as FileRef;
  }

  private makeHost(): RoomHost {
    return {
      user: this.user,
      settings: {
        gapFillMs: positive(this.options.gapFillMs, 300, 'gapFillMs', true),
        historyPageSize: Math.min(500, positive(this.options.historyPageSize, 500, 'historyPageSize')),
        maxMessages: positive(this.options.maxMessages, 1_000, 'maxMessages'),
        maxBuffered: positive(this.options.maxBuffered, 1_000, 'maxBuffered'),
        retry: this.backoff,
        random: this.random,
      },
      isOpen: () => this.isOpen(),
      request: <T>(address: string, body: unknown, refusal?: PendingRequest['refusal']) =>
        this.request<T>(address, body, refusal),
      register: (address, onRefused) => {
        // Already sent on this socket: a refusal still to come concerns the newest caller.
        if (this.registeredHere.has(address)) {
          this.registeredHere.set(address, onRefused);
          return;
        }
        this.sendFrame({ type: 'register', address });
        this.registeredHere.set(address, onRefused);
      },
      unregister: (address) => {
        if (!this.registeredHere.delete(address)) return;
        try {
          this.sendFrame({ type: 'unregister', address });
        } catch {
          // not connected: the bridge dropped the registration with the socket
        }
      },
      checkFrame: (frame) => void this.serialize(frame),
      route: (address, handler) => {
        if (handler) this.handlers.set(address, handler);
        else this.handlers.delete(address);
      },
      persist: (entry) => this.outbox.persist(entry),
      unpersist: (clientMsgId) => this.outbox.unpersist(clientMsgId),
      giveBack: (entries) => this.outbox.giveBack(entries),
      upload: (data, name, contentType) => this.upload(data, name, contentType),
      catchingUp: (room, missed) => this.emit('catchingUp', { room, missed }),
      reportError: (err) => this.reportError(err),
      forget: (room) => {
        if (this.rooms.get(room.name) === room) this.rooms.delete(room.name);
      },
    };
  }

  // --- helpers ----------------------------------------------------------------------------

  private reportError(err: ChatError): void {
    this.emit('error', err);
  }

  private rejectConnect(err: ChatError): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }

  private clearTimers(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.drainTimer);
    clearInterval(this.heartbeatTimer);
    this.reconnectTimer = this.connectTimer = this.drainTimer = this.heartbeatTimer = undefined;
  }
}

function replyFailure(frame: ServerFrame, address: string): ChatError {
  const known: FailureType[] = ['TIMEOUT', 'NO_HANDLERS', 'RECIPIENT_FAILURE', 'ERROR'];
  const type = known.find((t) => t === frame.failureType) ?? 'ERROR';
  const code = typeof frame.failureCode === 'number' ? frame.failureCode : -1;
  const message = typeof frame.message === 'string' && frame.message ? frame.message : `${type} (${address})`;
  return new ChatError(type, message, { code });
}

function toBlob(data: Blob | ArrayBuffer | ArrayBufferView, contentType: string | undefined): Blob {
  const type = contentType ?? '';
  if (typeof Blob !== 'undefined' && data instanceof Blob) {
    return contentType === undefined || data.type === contentType ? data : new Blob([data], { type });
  }
  if (data instanceof ArrayBuffer) return new Blob([data], { type });
  if (ArrayBuffer.isView(data)) {
    // A copy: the view may be over a SharedArrayBuffer or a larger buffer (Node's Buffer pool).
    const bytes = new Uint8Array(data.byteLength);
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return new Blob([bytes], { type });
  }
  throw new ChatError('INVALID', 'sendFile: expected a Blob, an ArrayBuffer or a typed array');
}

/** Closes a socket and waits (bounded) for its close event. */
function closeSocket(ws: WebSocketLike, code: number, reason: string, abrupt = false): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(finish, 1_000);
    function finish(): void {
      clearTimeout(timer);
      resolve();
    }
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = () => {};
    ws.onclose = finish;
    try {
      if (abrupt && typeof ws.terminate === 'function') ws.terminate();
      else ws.close(code, reason.slice(0, 120));
    } catch {
      finish();
    }
  });
}
