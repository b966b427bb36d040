/**
 * RecentTailStore's (recent-tail.ts) side of a tail handover on drain (chat/tail-handover.ts): what
 * a draining owner hands over from its tails, and the tails announced to this node for rooms it is
 * to own, kept until their last part comes and the room's first use takes them.
 */
import { isDenseTail, messageBytes, type RoomTail } from './recent-tail-room.js';
import type { ChatMessage } from './types.js';

/** A room's newest messages, as handed over. */
export type HandedTail = { room: string; messages: ChatMessage[] };

/** The newest `perRoom` messages of `tails`, most recently used (last) first, up to `maxBytes` in all. */
export function handoverSnapshot(
  tails: ReadonlyMap<string, RoomTail>,
  perRoom: number,
  maxBytes: number,
): HandedTail[] {
  const out: HandedTail[] = [];
  let bytes = 0;
  for (const [room, tail] of [...tails].reverse()) {
    const messages = tail.messages.slice(-perRoom);
    const size = messages.reduce((n, m) => n + messageBytes(m), 0);
    if (bytes + size > maxBytes) break;
    bytes += size;
    // An empty room's tail says "nothing stored yet" (last 0): worth a lookup saved too.
    if (messages.length > 0 || tail.last === 0) out.push({ room, messages });
  }
  return out;
}

/**
 * Appends under way per room. A room that moves while some are under way is handed over in two
 * steps: its tail now, and what those appends stored once they are done (`whenDone`).
 */
export class AppendsInFlight {
  private readonly count = new Map<string, number>();
  private readonly watches = new Map<string, Watch[]>();

  enter(room: string): void {
    this.count.set(room, (this.count.get(room) ?? 0) + 1);
  }

  /** An append is over: `stored` is its message, 'failed' when whether it landed is unknown. */
  leave(room: string, stored: ChatMessage | 'failed'): void {
    for (const w of this.watches.get(room) ?? []) {
      if (stored === 'failed') w.failed = true;
      else w.messages.push(stored);
    }
    const left = (this.count.get(room) ?? 1) - 1;
    if (left > 0) return void this.count.set(room, left);
    this.count.delete(room);
    const done = this.watches.get(room) ?? [];
    this.watches.delete(room);
    for (const w of done) w.resolve(w.failed ? undefined : w.messages);
  }

  has(room: string): boolean {
    return this.count.has(room);
  }

  /**
   * Once no append to `room` is under way here: what the appends stored meanwhile (in seq order),
   * or undefined when one of them failed (it may have landed unseen).
   */
  whenDone(room: string): Promise<ChatMessage[] | undefined> {
    if (!this.count.has(room)) return Promise.resolve([]);
    return new Promise((resolve) => {
      const w: Watch = { messages: [], failed: false, resolve: (m) => resolve(m && bySeq(m)) };
      this.watches.set(room, [...(this.watches.get(room) ?? []), w]);
    });
  }
}

interface Watch {
  messages: ChatMessage[];
  failed: boolean;
  resolve: (messages: ChatMessage[] | undefined) => void;
}

/** Sorted by seq, each seq once (a duplicate answer repeats a message). */
function bySeq(messages: ChatMessage[]): ChatMessage[] {
  const seen = new Map(messages.map((m) => [m.seq, m]));
  return [...seen.values()].sort((a, b) => a.seq - b.seq);
}

/** `tail`'s messages after seq `after`; undefined when it does not reach back there. */
export function tailAfter(tail: RoomTail | undefined, after: number): ChatMessage[] | undefined {
  if (!tail || tail.last < after) return undefined;
  const first = tail.messages[0]?.seq ?? tail.last + 1;
  if (after + 1 < first && tail.last > after) return undefined;
  return tail.messages.filter((m) => m.seq > after);
}

/** A tail a draining owner announced for a room this node is to own, until its last part comes. */
interface Expected {
  messages: ChatMessage[];
  bytes: number;
  /** Resolves with the whole tail (the announced part and what followed), or undefined: read the store. */
  done: Promise<ChatMessage[] | undefined>;
  settle: (messages: ChatMessage[] | undefined) => void;
  settled: boolean;
  /** A load of the room waits on it. */
  taken: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** How long a completed handover waits for this node to see that it owns the room. */
const HANDED_OVER_KEEP_MS = 5_000;

export class ExpectedHandovers {
  private readonly expected = new Map<string, Expected>();
  private bytes = 0;

  /** `maxBytes`: what announced tails may hold together (the node's tail budget). */
  constructor(private readonly maxBytes: number) {}

  /** An announced tail of `room`, kept at most `waitMs` for the rest; ignored past `maxBytes`. */
  expect(room: string, messages: ChatMessage[], waitMs: number): void {
    if (!isDenseTail(room, messages)) return;
    const old = this.expected.get(room);
    if (old) this.expire(room, old);
    const bytes = messages.reduce((n, m) => n + messageBytes(m), 0);
    if (this.bytes + bytes > this.maxBytes) return;
    let settle!: (messages: ChatMessage[] | undefined) => void;
    const done = new Promise<ChatMessage[] | undefined>((resolve) => (settle = resolve));
    const entry: Expected = { messages, bytes, done, settle, timer: undefined, taken: false, settled: false };
    this.expected.set(room, entry);
    this.bytes += bytes;
    this.expireLater(room, entry, waitMs);
  }

  /**
   * The rest of an announced tail (undefined: the old owner could not tell, read the store). A
   * load waiting on it gets it; else `install` is offered the whole tail and says whether it took
   * it, and one it did not take is kept ready for a while for the room's first use.
   */
  complete(room: string, more: ChatMessage[] | undefined, install: (whole: ChatMessage[]) => boolean): void {
    const entry = this.expected.get(room);
    if (!entry || entry.settled) return;
    const all = more === undefined ? undefined : [...entry.messages, ...more];
    const whole = all !== undefined && isDenseTail(room, all) ? all : undefined;
    entry.settled = true;
    entry.settle(whole);
    if (whole === undefined || entry.taken) return this.expire(room, entry); // a waiting load installs it
    if (install(whole)) return this.expire(room, entry);
    this.expireLater(room, entry, HANDED_OVER_KEEP_MS);
  }

  /**
   * A load of `room` waits on the tail announced for it, if any (undefined: none): `use` gets the
   * whole tail, or undefined when it did not come (read the store).
   */
  take<T>(
    room: string,
    use: (whole: ChatMessage[] | undefined) => T | PromiseLike<T>,
  ): Promise<T> | undefined {
    const entry = this.expected.get(room);
    if (!entry) return undefined;
    entry.taken = true;
    return entry.done.then((whole) => {
      this.expire(room, entry);
      return use(whole);
    });
  }

  /** Forgets every handover; loads waiting on one read the store. */
  expireAll(): void {
    for (const [room, entry] of [...this.expected]) this.expire(room, entry);
  }

  private expireLater(room: string, entry: Expected, ms: number): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.expire(room, entry), ms);
    entry.timer.unref();
  }

  /** Forgets a handover; a load waiting on one that never completed reads the store. */
  private expire(room: string, entry: Expected): void {
    clearTimeout(entry.timer);
    if (!entry.settled) {
      entry.settled = true;
      entry.settle(undefined);
    }
    if (this.expected.get(room) !== entry) return;
    this.expected.delete(room);
    this.bytes -= entry.bytes;
  }
}
