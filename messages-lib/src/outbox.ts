/** A message the user sent that the server has not acknowledged yet. */
export interface OutboxEntry {
  /** Idempotency key: every attempt of this message carries it, so the server stores it once. */
  clientMsgId: string;
  room: string;
  user: string;
  text?: string;
  /** The uploaded file the message references (the server only needs `id`). */
  file?: { id: string; name?: string; size?: number; contentType?: string };
  /** When the user sent it (ms since the epoch, client clock): the resend order. */
  createdAt: number;
}

/**
 * Where unacknowledged messages are kept so they survive a reload or restart. Methods may be
 * synchronous or return promises (IndexedDB, a file, a database…). `load` returns every stored
 * entry; the client picks the ones of its user.
 */
export interface OutboxStorage {
  load(): OutboxEntry[] | Promise<OutboxEntry[]>;
  put(entry: OutboxEntry): void | Promise<void>;
  remove(clientMsgId: string): void | Promise<void>;
}

/** The default: in memory, lost with the page or process. */
export class MemoryOutbox implements OutboxStorage {
  private readonly entries = new Map<string, OutboxEntry>();

  load(): OutboxEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  put(entry: OutboxEntry): void {
    this.entries.set(entry.clientMsgId, { ...entry });
  }

  remove(clientMsgId: string): void {
    this.entries.delete(clientMsgId);
  }
}

/** The subset of the Web Storage API the outbox uses (`localStorage`, `sessionStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Keeps the outbox in `localStorage` under one key (a JSON array), so messages written while
 * offline are sent after a reload. Every operation reads the current value first, so two tabs
 * of the same page do not overwrite each other's entries (a message both tabs resend is stored
 * once: the server dedupes by clientMsgId).
 */
export class LocalStorageOutbox implements OutboxStorage {
  private readonly storage: StorageLike;

  constructor(
    readonly key = 'switchboard.outbox',
    storage?: StorageLike,
  ) {
    const found = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!found) throw new Error('LocalStorageOutbox: no localStorage here; pass a Storage object');
    this.storage = found;
  }

  load(): OutboxEntry[] {
    return this.read();
  }

  put(entry: OutboxEntry): void {
    const entries = this.read().filter((e) => e.clientMsgId !== entry.clientMsgId);
    entries.push(entry);
    this.write(entries);
  }

  remove(clientMsgId: string): void {
    const entries = this.read();
    const kept = entries.filter((e) => e.clientMsgId !== clientMsgId);
    if (kept.length !== entries.length) this.write(kept);
  }

  private read(): OutboxEntry[] {
    const raw = this.storage.getItem(this.key);
    if (raw === null) return [];
    try {
      const parsed: unknown = JSON.parse(raw);
      return Array.isArray(parsed) ? parsed.filter(isEntry) : [];
    } catch {
      return []; // a corrupt value is not worth failing the page over
    }
  }

  private write(entries: OutboxEntry[]): void {
    if (entries.length === 0) this.storage.removeItem(this.key);
    else this.storage.setItem(this.key, JSON.stringify(entries));
  }
}

function isEntry(value: unknown): value is OutboxEntry {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Partial<OutboxEntry>;
  return (
    typeof e.clientMsgId === 'string' &&
    typeof e.room === 'string' &&
    typeof e.user === 'string' &&
    typeof e.createdAt === 'number' &&
    (typeof e.text === 'string' || (typeof e.file === 'object' && e.file !== null))
  );
}
