import type {
  ConnectionState,
  EmitClientEvent,
  TokenSource,
  WebSocketCtor,
  WebSocketLike,
} from './client-options.js';
import { ConnectWaiters } from './connect-waiters.js';
import { ChatError, toChatError } from './errors.js';
import {
  CLOSE_ABNORMAL,
  CLOSE_NORMAL,
  CLOSE_SERVICE_RESTART,
  type BridgeRefusal,
  fatalClose,
  ReconnectDelays,
} from './reconnect-policy.js';
import { closeSocket, frameOf, OPEN } from './socket.js';
import type { ServerFrame } from './types.js';
import type { BackoffOptions, Endpoints, Timer } from './util.js';

export interface ConnectionSettings {
  /** The servers, tried in turn: the next one on every new connection. */
  endpoints: Endpoints[];
  WebSocket: WebSocketCtor;
  /** Read before every connection attempt. */
  auth: { token?: TokenSource };
  backoff: BackoffOptions;
  drainJitterMs: number;
  heartbeatMs: number;
  connectTimeoutMs: number;
  random: () => number;
}

/** What the connection tells its client. */
export interface ConnectionHooks {
  /** `state`, `reconnecting`, `disconnected` and `error`. */
  emit: EmitClientEvent;
  /** connect() starts a run. */
  starting(): void;
  /** Sends a frame on the open socket; throws when there is none. */
  send(frame: object): void;
  /** A new socket replaces the last one: nothing is registered on it yet. */
  socketCreated(): void;
  /** The server answered on the new socket: the session is live. */
  established(): void;
  /** A frame other than a pong arrived. */
  frame(frame: ServerFrame): void;
  /** The socket is gone: what waited for a reply on it fails with `err`. */
  failRequests(err: ChatError): void;
  /** The connection was lost (the client may reconnect). */
  lost(): void;
}

/**
 * The client's socket to the bridge and its lifecycle: opens it (with the token, on the next node
 * of the list), holds it open with pings, notices a dead link, and reconnects with backoff until
 * the server refuses the client for good or the client closes.
 */
export class Connection {
  private readonly delays: ReconnectDelays;
  private endpointIndex = 0;
  private _state: ConnectionState = 'closed';
  /** connect() was called and neither close() nor a fatal close happened since. */
  private _running = false;
  private everOpened = false;
  private ws: WebSocketLike | undefined;
  private lastFrameAt = 0;
  private lastBridgeError: BridgeRefusal | undefined;
  private reconnectTimer: Timer | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private connectTimer: Timer | undefined;
  private drainTimer: Timer | undefined;
  /** Bumped by every connection attempt: an attempt overtaken by another one gives up. */
  private openGen = 0;
  private readonly connectWaiters = new ConnectWaiters();

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly hooks: ConnectionHooks,
  ) {
    this.delays = new ReconnectDelays(settings.backoff, settings.drainJitterMs, settings.random);
  }

  /** The endpoints of the server used now (or next). */
  get endpoints(): Endpoints {
    return this.settings.endpoints[this.endpointIndex]!;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** connect() was called and neither close() nor a fatal close happened since. */
  get running(): boolean {
    return this._running;
  }

  isOpen(): boolean {
    return this._state === 'open' && this.ws !== undefined && this.ws.readyState === OPEN;
  }

  /** The socket, if one is open to send on. */
  openSocket(): WebSocketLike | undefined {
    const ws = this.ws;
    return ws && ws.readyState === OPEN ? ws : undefined;
  }

  /** Resolves once the socket is open; see ChatClient.connect. */
  connect(): Promise<void> {
    if (this._state === 'open') return Promise.resolve();
    const done = this.connectWaiters.wait();
    if (!this._running) {
      this._running = true;
      this.everOpened = false;
      this.delays.reset();
      this.lastBridgeError = undefined;
      this.hooks.starting();
      this.setState('connecting');
      this.open();
    }
    return done;
  }

  /** No reconnection from now on; close() follows. */
  halt(): void {
    this._running = false;
    this.clearTimers();
  }

  /** After halt(): closes for good; connect() waiters and requests reject with `err`. */
  async close(err: ChatError): Promise<void> {
    this.connectWaiters.rejectAll(err);
    const ws = this.ws;
    this.ws = undefined;
    this.hooks.failRequests(err);
    this.setState('closed');
    if (ws) await closeSocket(ws, CLOSE_NORMAL, 'client closed');
  }

  /** The bridge refused a frame: a 1008 close that follows is reported with it. */
  noteRefusal(reason: string, message?: string): void {
    this.lastBridgeError = { body: reason, ...(message !== undefined ? { message } : {}) };
  }

  /**
   * The node drains: reconnect (to any node) after `afterMs` plus jitter, so clients spread out.
   * A server that spreads its requests itself says how much jitter to add (`jitterMs`;
   * Switchboard: 0).
   */
  drain(afterMs: number, jitterMs: number | undefined): void {
    const delayMs = this.delays.drain(afterMs, jitterMs);
    const ws = this.ws;
    clearTimeout(this.drainTimer);
    // The server closes with 1012 right after; if it does not, leave by ourselves.
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      if (this.ws === ws) this.dropSocket(CLOSE_SERVICE_RESTART, 'reconnect requested by the server');
    }, delayMs);
  }

  /** Opens a socket in the background: its failures are reported, or end in a reconnect. */
  private open(): void {
    void this.dial().catch((err: unknown) => this.reportError(toChatError(err)));
  }

  private async dial(): Promise<void> {
    this.reconnectTimer = undefined;
    const gen = ++this.openGen;
    // Each new connection after the first moves on to the next node of the list.
    if (gen > 1) this.endpointIndex = (this.endpointIndex + 1) % this.settings.endpoints.length;
    let url = this.endpoints.websocket;
    try {
      const auth = this.settings.auth;
      const token = typeof auth.token === 'function' ? await auth.token() : auth.token;
      if (token) url += `?token=${encodeURIComponent(token)}`;
    } catch (err) {
      if (gen !== this.openGen || !this._running) return;
      this.reportError(new ChatError('AUTH', `the token function failed: ${String(err)}`, { cause: err }));
      this.scheduleReconnect(CLOSE_ABNORMAL, 'token function failed');
      return;
    }
    if (gen !== this.openGen || !this._running || this.ws) return;
    let ws: WebSocketLike;
    try {
      ws = new this.settings.WebSocket(url);
    } catch (err) {
      this.fatal(
        new ChatError('CONFIG', `cannot open a WebSocket to ${url}: ${String(err)}`, { cause: err }),
      );
      return;
    }
    this.ws = ws;
    this.hooks.socketCreated();
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // not settable on every WebSocket implementation; the bridge sends text frames
    }
    this.connectTimer = setTimeout(() => {
      this.connectTimer = undefined;
      if (this.ws === ws) this.dropSocket(CLOSE_ABNORMAL, 'connect timeout');
    }, this.settings.connectTimeoutMs);
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
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.settings.heartbeatMs);
    this.connectWaiters.resolveAll();
    this.hooks.established();
  }

  private heartbeat(): void {
    if (!this.ws) return;
    if (Date.now() - this.lastFrameAt >= 2 * this.settings.heartbeatMs) {
      this.dropSocket(CLOSE_ABNORMAL, 'heartbeat timeout: no frame from the server');
      return;
    }
    // The connection survived an interval: the next failure starts the backoff afresh (a node
    // that accepts and then drops at once keeps the backoff growing).
    this.delays.reset();
    try {
      this.ping();
    } catch {
      // closing: its close event follows
    }
  }

  private ping(): void {
    this.hooks.send({ type: 'ping' });
  }

  private onData(data: unknown): void {
    this.lastFrameAt = Date.now();
    const frame = frameOf(data);
    if (!frame) return;
    if ((frame.type === 'pong' || frame.type === 'rec') && this._state !== 'open') this.onEstablished();
    // a pong only says the link is alive: lastFrameAt says so
    if (frame.type !== 'pong') this.hooks.frame(frame);
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
    this.hooks.failRequests(
      new ChatError('DISCONNECTED', `connection closed (${code}${reason ? ` ${reason}` : ''})`),
    );
    this.hooks.lost();
    this.hooks.emit('disconnected', { code, reason });
    if (!this._running) return;
    const err = fatalClose(code, reason, this.lastBridgeError);
    if (err) this.fatal(err);
    else this.scheduleReconnect(code, reason);
  }

  /** No reconnection: state closed, the error reported; rooms and outbox kept for a later connect(). */
  private fatal(err: ChatError): void {
    this._running = false;
    this.clearTimers();
    this.setState('closed');
    this.reportError(err);
    this.connectWaiters.rejectAll(err);
  }

  private scheduleReconnect(code: number, reason: string): void {
    const { attempt, delayMs } = this.delays.next(code);
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    this.hooks.emit('reconnecting', { attempt, delayMs, code, reason });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delayMs);
  }

  private reportError(err: ChatError): void {
    this.hooks.emit('error', err);
  }

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.hooks.emit('state', state);
  }

  private clearTimers(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.drainTimer);
    clearInterval(this.heartbeatTimer);
    this.reconnectTimer = this.connectTimer = this.drainTimer = this.heartbeatTimer = undefined;
  }
}
