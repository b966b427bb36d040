import type { ChatError } from './errors.js';
import type { OutboxStorage } from './outbox.js';

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

/** Emits one of the client's events: how the client's parts speak through it. Internal. */
export type EmitClientEvent = <K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]) => void;
