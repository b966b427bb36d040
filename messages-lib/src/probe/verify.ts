import type { ProbeLedger, Violation } from './ledger.js';
import { type Percentiles, percentiles } from './stats.js';

export type { Violation, ViolationKind } from './ledger.js';

export interface StoreCheck {
  /** Every room's history was read. */
  checked: boolean;
  /** Messages of this run found in the histories. */
  messages: number;
  lost: number;
  duplicates: number;
  /** Acked messages checked against the stored history while the run went on (then forgotten). */
  checkedDuringRun: number;
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

/**
 * The verdict on a ledger: the client-side counts it kept while deliveries arrived, each acked
 * message judged against every client of its room, and the stored-history check. `window` is the
 * sending phase, over which delivery gaps are measured (the ledger's own window when it has one).
 * Changes nothing: calling it twice gives the same answer.
 */
export function verify(ledger: ProbeLedger, window: { from: number; to: number }): Verification {
  const log = ledger.violations.clone();
  const counts = ledger.counts();
  const clientLost = counts.lostOnline + ledger.judgeRest(log);
  const store = ledger.checkStore(log);
  const p = ledger.progress();
  const gaps = percentiles(ledger.gaps(window.to));
  return {
    sent: p.sent,
    acked: p.acked,
    failed: p.failed,
    unacked: p.pending,
    delivered: p.delivered,
    expected: counts.expected,
    lost: clientLost + store.lost,
    duplicates: counts.duplicates + store.duplicates,
    outOfOrder: counts.outOfOrder,
    reconnects: p.reconnects,
    latencyMs: ledger.latency.percentiles(),
    ackLatencyMs: ledger.ackLatency.percentiles(),
    maxDeliveryGapMs: gaps.max,
    p99DeliveryGapMs: gaps.p99,
    store,
    violationCount: log.count,
    violations: log.sample,
  };
}
