/**
 * What the benchmark orchestrator and its load-generator processes say to each other (over the
 * child-process IPC channel), and the message tag every published message carries.
 */

/**
 * Which server the generator speaks to: Switchboard's bridge, the raw `ws` peer, Socket.IO,
 * Centrifugo (its JSON client protocol).
 */
export type ServerKind = 'sb' | 'ws' | 'sio' | 'cent';

export type Command =
  | {
      cmd: 'connect';
      kind: ServerKind;
      urls: string[];
      count: number;
      room: string;
      ping: boolean;
      /** Centrifugo: the HMAC secret the generator signs its connection tokens with. */
      secret?: string | undefined;
    }
  | {
      cmd: 'publish';
      kind: ServerKind;
      url: string;
      room: string;
      step: number;
      rate: number;
      ms: number;
      secret?: string | undefined;
    }
  | {
      /**
       * Many rooms: `rooms` rooms (`<prefix>-<n>`, n from `firstRoom`) of `roomSize` clients, each
       * client a member of its room and a sender in it.
       */
      cmd: 'roomsConnect';
      kind: ServerKind;
      url: string;
      prefix: string;
      firstRoom: number;
      rooms: number;
      roomSize: number;
      secret?: string | undefined;
    }
  | {
      /** Sends one probe into each room until every member has one (or `ms` passed). */
      cmd: 'roomsProbe';
      ms: number;
    }
  | {
      /**
       * Every client of this generator sends in turn (a shuffled order, so consecutive messages go
       * to different rooms): `rate` messages a second in all, for `ms`.
       */
      cmd: 'roomsSend';
      step: number;
      rate: number;
      ms: number;
    }
  | { cmd: 'report'; step: number }
  | { cmd: 'probed'; id: number }
  | { cmd: 'ingest'; url: string; conns: number; window: number; rooms: number; ms: number; tag: string }
  | { cmd: 'storm'; urls: string[]; count: number; room: string }
  | { cmd: 'stormStatus'; upTo: number }
  | { cmd: 'close' };

export type Reply =
  | { ok: 'connect'; connected: number; failed: number }
  | {
      ok: 'publish';
      sent: number;
      acked: number;
      failed: number;
      ms: number;
      /** Many rooms: error replies by reason. */
      errors?: [string, number][];
    }
  | { ok: 'report'; received: number; hist: [number, number][] }
  | { ok: 'roomsProbe'; ready: number; clients: number }
  | { ok: 'probed'; count: number }
  | { ok: 'ingest'; acked: number; failed: number; ms: number }
  | { ok: 'storm'; joined: number; failed: number }
  | { ok: 'stormStatus'; open: number; caughtUp: number; lost: number; duplicates: number }
  | { ok: 'close' }
  | { error: string };

/**
 * A published message's id: `b-<step>-<i>-<sentAtMs>`. Switchboard's `clientMsgId` allows
 * `A-Za-z0-9_.:-`, so the same tag travels unchanged through every server.
 */
export function tagOf(step: number, i: number, sentAt: number): string {
  return `b-${step}-${i}-${sentAt.toFixed(3)}`;
}

export function parseTag(tag: unknown): { step: number; sentAt: number } | undefined {
  if (typeof tag !== 'string' || !tag.startsWith('b-')) return undefined;
  const parts = tag.split('-');
  if (parts.length !== 4) return undefined;
  return { step: Number(parts[1]), sentAt: Number(parts[3]) };
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Latency histogram buckets: 0.1 ms wide up to 10 s, one overflow bucket. */
export const BUCKET_MS = 0.1;
export const BUCKETS = 100_001;

export function bucketOf(ms: number): number {
  return Math.min(BUCKETS - 1, Math.max(0, Math.floor(ms / BUCKET_MS)));
}

/** The q-quantile (0..1) of a merged sparse histogram, in ms. */
/** The median of a non-empty list (the upper one of an even count). */
export function middle(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

export function quantile(hist: Map<number, number>, q: number): number {
  let total = 0;
  for (const n of hist.values()) total += n;
  if (total === 0) return NaN;
  const want = Math.ceil(q * total);
  let seen = 0;
  for (const b of [...hist.keys()].sort((a, c) => a - c)) {
    seen += hist.get(b)!;
    if (seen >= want) return (b + 1) * BUCKET_MS;
  }
  return NaN;
}

/** A chat-sized message body, the same for every server so frame sizes are comparable. */
export function chatBody(room: string, tag: string, seq: number): Record<string, unknown> {
  return {
    room,
    seq,
    id: `m${seq.toString(36).padStart(10, '0')}`,
    clientMsgId: tag,
    user: 'publisher',
    text: 'The quick brown fox jumps over the lazy dog, then asks how the benchmark is going.',
    ts: Date.now(),
  };
}
