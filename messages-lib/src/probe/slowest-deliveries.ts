/**
 * The slowest deliveries of a run, each with what tells a slow send from a slow delivery: how long
 * the sender waited for its ack, and who received it late. A fault run's latency max is one of these.
 */

export interface SlowDelivery {
  /** From the send to this delivery. */
  ms: number;
  room: string;
  seq: number;
  from: string;
  to: string;
  /** From the send to its ack (undefined: delivered before it was acked). */
  ackMs: number | undefined;
  /** When it was sent (ISO 8601), to set beside the servers' logs. */
  sentAt: string;
}

const KEPT = 5;

export class SlowestDeliveries {
  private kept: SlowDelivery[] = [];

  /** Cheap for the common case: a delivery faster than the fifth slowest is one comparison. */
  add(d: Omit<SlowDelivery, 'sentAt'> & { sentAtMs: number }): void {
    if (this.kept.length === KEPT && d.ms <= this.kept[KEPT - 1]!.ms) return;
    const { sentAtMs, ...rest } = d;
    this.kept = slowestDeliveries([
      ...this.kept,
      { ...rest, sentAt: new Date(performance.timeOrigin + sentAtMs).toISOString() },
    ]);
  }

  slowest(): SlowDelivery[] {
    return this.kept;
  }
}

/** The slowest few of several lists (workers' reports merged). */
export function slowestDeliveries(list: SlowDelivery[]): SlowDelivery[] {
  return [...list].sort((a, b) => b.ms - a.ms).slice(0, KEPT);
}
