/**
 * Everything a probe run saw, as it happened: each send and its outcome, each delivery at each
 * client, each greeting of a server, and at the end the rooms' stored history. Pure bookkeeping
 * (no I/O, times passed in), so the verifier can be fed crafted streams in tests.
 */

export interface SendRecord {
  /** The run-wide message number; the text carries it. */
  key: number;
  client: number;
  room: string;
  text: string;
  clientMsgId: string;
  /** When `room.send` was called. */
  sentAt: number;
  state: 'pending' | 'acked' | 'failed';
  seq?: number;
  ackAt?: number;
  error?: string;
}

/** A `message` event of a client's Room. */
export interface Delivery {
  seq: number;
  clientMsgId: string;
  text: string | undefined;
  at: number;
}

export interface ClientRecord {
  index: number;
  user: string;
  room: string;
  /** In the order the Room emitted them. */
  deliveries: Delivery[];
  /** The servers' greetings (one per connection); more than one means reconnections. */
  hellos: { node: string; at: number }[];
  /** clientMsgIds delivered at least once. */
  readonly seen: Set<string>;
  /** Acked clientMsgIds of the room delivered at least once (for the settle check). */
  readonly covered: Set<string>;
  lastError?: string;
}

/** A stored message as `chat.history` returns it. */
export interface StoredMessage {
  seq: number;
  clientMsgId: string;
  text?: string | undefined;
}

/**
 * A room's stored history as read at `readAt` (same clock as the acks): an ack that arrived after
 * the read began may be missing from it without anything being lost, so the store check skips it.
 */
export type RoomHistory = { messages: StoredMessage[]; readAt?: number } | { error: string };

export class ProbeLedger {
  readonly clients: ClientRecord[];
  readonly sends = new Map<number, SendRecord>();
  /** Per room: clientMsgId → its acked send. */
  readonly acked = new Map<string, Map<string, SendRecord>>();
  readonly history = new Map<string, RoomHistory>();
  private readonly byClientMsgId = new Map<string, SendRecord>();
  private readonly roomClients = new Map<string, ClientRecord[]>();
  private readonly textPattern: RegExp;
  private pendingCount = 0;
  private ackedCount = 0;
  private failedCount = 0;
  private deliveredCount = 0;

  constructor(
    readonly runId: string,
    clients: { user: string; room: string }[],
  ) {
    this.textPattern = new RegExp(`^probe:${escapeRegExp(runId)}:(\\d+)$`);
    this.clients = clients.map((c, index) => ({
      index,
      user: c.user,
      room: c.room,
      deliveries: [],
      hellos: [],
      seen: new Set(),
      covered: new Set(),
    }));
    for (const c of this.clients) {
      const list = this.roomClients.get(c.room) ?? [];
      list.push(c);
      this.roomClients.set(c.room, list);
      if (!this.acked.has(c.room)) this.acked.set(c.room, new Map());
    }
  }

  get rooms(): string[] {
    return [...this.roomClients.keys()];
  }

  clientsOf(room: string): readonly ClientRecord[] {
    return this.roomClients.get(room) ?? [];
  }

  /** The text of message `key`: it names the run, so deliveries of other runs are told apart. */
  textFor(key: number): string {
    return `probe:${this.runId}:${key}`;
  }

  /** The message number a text of this run carries, or undefined. */
  keyOf(text: string | undefined): number | undefined {
    if (text === undefined) return undefined;
    const m = this.textPattern.exec(text);
    return m ? Number(m[1]) : undefined;
  }

  send(client: number, key: number, clientMsgId: string, at: number): SendRecord {
    if (this.sends.has(key)) throw new Error(`probe: message ${key} recorded twice`);
    const c = this.client(client);
    const rec: SendRecord = {
      key,
      client,
      room: c.room,
      text: this.textFor(key),
      clientMsgId,
      sentAt: at,
      state: 'pending',
    };
    this.sends.set(key, rec);
    this.byClientMsgId.set(clientMsgId, rec);
    this.pendingCount++;
    return rec;
  }

  ack(key: number, seq: number, at: number): void {
    const rec = this.sends.get(key);
    if (!rec || rec.state !== 'pending') return;
    rec.state = 'acked';
    rec.seq = seq;
    rec.ackAt = at;
    this.pendingCount--;
    this.ackedCount++;
    this.acked.get(rec.room)!.set(rec.clientMsgId, rec);
    for (const c of this.clientsOf(rec.room)) if (c.seen.has(rec.clientMsgId)) c.covered.add(rec.clientMsgId);
  }

  fail(key: number, error: string, at: number): void {
    const rec = this.sends.get(key);
    if (!rec || rec.state !== 'pending') return;
    rec.state = 'failed';
    rec.error = error;
    rec.ackAt = at;
    this.pendingCount--;
    this.failedCount++;
  }

  deliver(
    client: number,
    m: { seq: number; clientMsgId: string; text?: string | undefined },
    at: number,
  ): void {
    const c = this.client(client);
    c.deliveries.push({ seq: m.seq, clientMsgId: m.clientMsgId, text: m.text, at });
    if (this.isOurs(m)) this.deliveredCount++;
    c.seen.add(m.clientMsgId);
    if (this.acked.get(c.room)!.has(m.clientMsgId)) c.covered.add(m.clientMsgId);
  }

  hello(client: number, node: string, at: number): void {
    this.client(client).hellos.push({ node, at });
  }

  clientError(client: number, error: string): void {
    this.client(client).lastError = error;
  }

  storeHistory(room: string, history: RoomHistory): void {
    this.history.set(room, history);
  }

  /** A message of this run (sent by it, or carrying its text). */
  isOurs(m: { clientMsgId: string; text?: string | undefined }): boolean {
    return this.byClientMsgId.has(m.clientMsgId) || this.keyOf(m.text) !== undefined;
  }

  sendOf(clientMsgId: string): SendRecord | undefined {
    return this.byClientMsgId.get(clientMsgId);
  }

  /** Every send answered, and every client holds every acked message of its room. */
  settled(): boolean {
    if (this.pendingCount > 0) return false;
    return this.clients.every((c) => c.covered.size === this.acked.get(c.room)!.size);
  }

  progress(): {
    sent: number;
    acked: number;
    failed: number;
    pending: number;
    delivered: number;
    reconnects: number;
  } {
    return {
      sent: this.sends.size,
      acked: this.ackedCount,
      failed: this.failedCount,
      pending: this.pendingCount,
      delivered: this.deliveredCount,
      reconnects: this.reconnects(),
    };
  }

  reconnects(): number {
    return this.clients.reduce((n, c) => n + Math.max(0, c.hellos.length - 1), 0);
  }

  private client(index: number): ClientRecord {
    const c = this.clients[index];
    if (!c) throw new Error(`probe: no client ${index}`);
    return c;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
