import type { ClientRecord, ProbeLedger, SendRecord } from './ledger.js';
import { longestGap, type Percentiles, percentiles } from './stats.js';

export type ViolationKind =
  | 'lost' // an acked message a client never received
  | 'duplicate' // a seq or clientMsgId delivered twice to one client
  | 'seq-mismatch' // delivered under another seq than its ack said
  | 'content-mismatch' // delivered under the acked clientMsgId and seq but with another text
  | 'out-of-order' // a delivered seq ≤ the one delivered before it
  | 'not-stored' // acked, but the room's history does not hold it
  | 'stored-twice' // one clientMsgId (or one seq) stored more than once
  | 'stored-under-other-seq'; // stored once, but not under the seq of its ack

export interface Violation {
  kind: ViolationKind;
  room: string;
  /** The client that saw it (client-side checks). */
  user?: string;
  clientMsgId?: string;
  seq?: number;
  detail: string;
}

export interface StoreCheck {
  /** Every room's history was read. */
  checked: boolean;
  /** Messages of this run found in the histories. */
  messages: number;
  lost: number;
  duplicates: number;
  errors: string[];
}

export interface Verification {
  sent: number;
  acked: number;
  failed: number;
  /** Sent, neither acked nor refused by the end (still in an outbox). */
  unacked: number;
  /** `message` events of this run's messages, over all clients (duplicates included). */
  delivered: number;
  /** Σ over clients of the acked messages of its room. */
  expected: number;
  /** Acked messages a client never received, plus acked messages missing from the store. */
  lost: number;
  /** Extra deliveries to a client, plus extra copies in the store. */
  duplicates: number;
  outOfOrder: number;
  reconnects: number;
  /** From `room.send` being called to the message event at each receiver. */
  latencyMs: Percentiles;
  /** From `room.send` being called to the sender's ack. */
  ackLatencyMs: Percentiles;
  maxDeliveryGapMs: number;
  p99DeliveryGapMs: number;
  store: StoreCheck;
  violationCount: number;
  /** The first few of each kind. */
  violations: Violation[];
}

const PER_KIND = 5;
const MAX_VIOLATIONS = 20;

/**
 * Checks the ledger: each client against the acked messages of its room, then the rooms' stored
 * history against the acks. `window` is the sending phase, over which delivery gaps are measured.
 */
export function verify(ledger: ProbeLedger, window: { from: number; to: number }): Verification {
  const violations = new ViolationLog();
  let lost = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let expected = 0;
  let delivered = 0;
  const latencies: number[] = [];
  const gaps: number[] = [];

  for (const c of ledger.clients) {
    const acked = ledger.acked.get(c.room)!;
    expected += acked.size;
    const r = checkClient(ledger, c, acked, violations, latencies);
    lost += r.lost;
    duplicates += r.duplicates;
    outOfOrder += r.outOfOrder;
    delivered += r.delivered;
    gaps.push(
      longestGap(
        c.deliveries.map((d) => d.at),
        window.from,
        window.to,
      ),
    );
  }

  const store = checkStore(ledger, violations);
  lost += store.lost;
  duplicates += store.duplicates;

  const sends = [...ledger.sends.values()];
  const ackedSends = sends.filter((s) => s.state === 'acked');
  const gapStats = percentiles(gaps);
  return {
    sent: sends.length,
    acked: ackedSends.length,
    failed: sends.filter((s) => s.state === 'failed').length,
    unacked: sends.filter((s) => s.state === 'pending').length,
    delivered,
    expected,
    lost,
    duplicates,
    outOfOrder,
    reconnects: ledger.reconnects(),
    latencyMs: percentiles(latencies),
    ackLatencyMs: percentiles(ackedSends.map((s) => s.ackAt! - s.sentAt)),
    maxDeliveryGapMs: gapStats.max,
    p99DeliveryGapMs: gapStats.p99,
    store,
    violationCount: violations.count,
    violations: violations.sample,
  };
}

function checkClient(
  ledger: ProbeLedger,
  c: ClientRecord,
  acked: Map<string, SendRecord>,
  violations: ViolationLog,
  latencies: number[],
): { lost: number; duplicates: number; outOfOrder: number; delivered: number } {
  let duplicates = 0;
  let outOfOrder = 0;
  let delivered = 0;
  let previous: number | undefined;
  const seqs = new Set<number>();
  const ids = new Set<string>();
  const intact = new Set<string>(); // acked messages delivered under their seq with their text
  for (const d of c.deliveries) {
    if (ledger.isOurs(d)) delivered++;
    const at = { room: c.room, user: c.user, clientMsgId: d.clientMsgId, seq: d.seq };
    if (previous !== undefined && d.seq <= previous) {
      outOfOrder++;
      violations.add({ kind: 'out-of-order', ...at, detail: `seq ${d.seq} delivered after seq ${previous}` });
    }
    previous = d.seq;
    const ack = acked.get(d.clientMsgId);
    if (seqs.has(d.seq) || ids.has(d.clientMsgId)) {
      duplicates++;
      violations.add({
        kind: 'duplicate',
        ...at,
        detail: seqs.has(d.seq)
          ? `seq ${d.seq} delivered again`
          : `clientMsgId delivered again, now as seq ${d.seq}`,
      });
    } else if (ack && ack.seq !== d.seq) {
      // The server knows this message under two seqs: the ack's and this one.
      duplicates++;
      violations.add({
        kind: 'seq-mismatch',
        ...at,
        detail: `delivered as seq ${d.seq}, acked as seq ${ack.seq}`,
      });
    }
    seqs.add(d.seq);
    ids.add(d.clientMsgId);
    if (!ack || ack.seq !== d.seq || intact.has(d.clientMsgId)) continue;
    if (d.text !== ack.text) {
      violations.add({
        kind: 'content-mismatch',
        ...at,
        detail: `delivered text ${JSON.stringify(d.text)}, sent ${JSON.stringify(ack.text)}`,
      });
      continue;
    }
    intact.add(d.clientMsgId);
    latencies.push(d.at - ack.sentAt);
  }
  let lost = 0;
  for (const ack of acked.values()) {
    if (intact.has(ack.clientMsgId)) continue;
    lost++;
    violations.add({
      kind: 'lost',
      room: c.room,
      user: c.user,
      clientMsgId: ack.clientMsgId,
      seq: ack.seq!,
      detail: `acked as seq ${ack.seq} (sent by ${ledger.clients[ack.client]!.user}), never delivered intact`,
    });
  }
  return { lost, duplicates, outOfOrder, delivered };
}

function checkStore(ledger: ProbeLedger, violations: ViolationLog): StoreCheck {
  const store: StoreCheck = { checked: true, messages: 0, lost: 0, duplicates: 0, errors: [] };
  for (const room of ledger.rooms) {
    const history = ledger.history.get(room);
    if (!history || 'error' in history) {
      store.checked = false;
      store.errors.push(`${room}: ${history ? history.error : 'history not read'}`);
      continue;
    }
    const byId = new Map<string, number[]>();
    const seqs = new Set<number>();
    for (const m of history.messages) {
      if (ledger.isOurs(m)) store.messages++;
      if (seqs.has(m.seq)) {
        store.duplicates++;
        violations.add({
          kind: 'stored-twice',
          room,
          seq: m.seq,
          clientMsgId: m.clientMsgId,
          detail: `seq ${m.seq} is in the history twice`,
        });
      }
      seqs.add(m.seq);
      const list = byId.get(m.clientMsgId) ?? [];
      list.push(m.seq);
      byId.set(m.clientMsgId, list);
    }
    for (const [clientMsgId, list] of byId) {
      if (list.length < 2) continue;
      store.duplicates += list.length - 1;
      violations.add({
        kind: 'stored-twice',
        room,
        clientMsgId,
        seq: list[0]!,
        detail: `one clientMsgId stored under seqs ${list.join(', ')}`,
      });
    }
    for (const ack of ledger.acked.get(room)!.values()) {
      if (history.readAt !== undefined && (ack.ackAt ?? 0) > history.readAt) continue;
      const list = byId.get(ack.clientMsgId);
      const at = { room, clientMsgId: ack.clientMsgId, seq: ack.seq! };
      if (!list) {
        store.lost++;
        violations.add({ kind: 'not-stored', ...at, detail: `acked as seq ${ack.seq}, not in the history` });
      } else if (list.length === 1 && list[0] !== ack.seq) {
        store.duplicates++;
        violations.add({
          kind: 'stored-under-other-seq',
          ...at,
          detail: `acked as seq ${ack.seq}, stored as seq ${list[0]}`,
        });
      }
    }
  }
  return store;
}

class ViolationLog {
  count = 0;
  readonly sample: Violation[] = [];
  private readonly perKind = new Map<ViolationKind, number>();

  add(v: Violation): void {
    this.count++;
    const n = this.perKind.get(v.kind) ?? 0;
    if (n >= PER_KIND || this.sample.length >= MAX_VIOLATIONS) return;
    this.perKind.set(v.kind, n + 1);
    this.sample.push(v);
  }
}
