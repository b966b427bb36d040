import { DEFAULT_CHAT_LIMITS } from '@switchboard/protocol';
import { ChatError } from './errors.js';

export type Timer = ReturnType<typeof setTimeout>;

interface CryptoLike {
  randomUUID?: () => string;
  getRandomValues?: <T extends Uint8Array>(array: T) => T;
}

/**
 * A random UUID v4 (36 characters: fits the bridge's 36-character reply addresses and the chat
 * service's clientMsgId alphabet). `crypto.randomUUID` exists only in secure contexts in browsers
 * (https or localhost), so plain-http pages fall back to `getRandomValues`, then to Math.random.
 */
export function uuid(): string {
  const c = (globalThis as { crypto?: CryptoLike }).crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface BackoffOptions {
  /** Base delay in ms (default 250). */
  baseMs: number;
  /** Cap in ms (default 10 000). */
  maxMs: number;
}

/**
 * Exponential backoff with full jitter: a uniformly random delay in [0, min(maxMs, baseMs·2^attempt)).
 * `attempt` counts from 0 (the first retry). `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * cap);
}

export interface Endpoints {
  /** `ws(s)://host[/prefix]/eventbus/websocket` */
  websocket: string;
  /** `http(s)://host[/prefix]/files` */
  files: string;
}

/**
 * Derives the bridge and file endpoints from the server's URL: http(s) or ws(s), with an optional
 * path prefix (a reverse proxy mounting the server under `/chat` works). A URL that already ends
 * in `/eventbus/websocket` is accepted too. Relative URLs resolve against the page's location.
 */
export function endpointsOf(url: string): Endpoints {
  let u: URL;
  try {
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    u = base ? new URL(url, base) : new URL(url);
  } catch {
    throw new ChatError('CONFIG', `url: not a valid URL: ${JSON.stringify(url)}`);
  }
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw new ChatError('CONFIG', `url: expected http(s):// or ws(s)://, got ${JSON.stringify(url)}`);
  }
  const prefix = u.pathname.replace(/\/+$/, '').replace(/\/eventbus\/websocket$/, '');
  return {
    websocket: `${secure ? 'wss' : 'ws'}://${u.host}${prefix}/eventbus/websocket`,
    files: `${secure ? 'https' : 'http'}://${u.host}${prefix}/files`,
  };
}

/** UTF-8 length of a string, without TextEncoder allocations for ASCII-only strings. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** An option that must be a positive (or, with zeroOk, non-negative) number; CONFIG error naming it otherwise. */
export function positive(value: number | undefined, fallback: number, name: string, zeroOk = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroOk && value === 0)) {
    throw new ChatError('CONFIG', `${name}: expected a ${zeroOk ? 'non-negative' : 'positive'} number`);
  }
  return value;
}

/** The `historyPageSize` option: at most the server's history limit, which refuses larger pages. */
export function historyPageSize(value: number | undefined): number {
  const max = DEFAULT_CHAT_LIMITS.historyMaxLimit;
  return Math.min(max, positive(value, max, 'historyPageSize'));
}

export function clamp01(x: number): number {
  return Math.min(Math.max(x, 0), 1);
}
