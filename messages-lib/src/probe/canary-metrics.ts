import type { LatencyHistogram } from './histogram.js';
import type { LoopDelay } from './self-monitor.js';

/** `le` bounds of switchboard_probe_latency_seconds (end to end: send call to delivery). */
export const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface CanaryFigures {
  sent: number;
  acked: number;
  failed: number;
  delivered: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  reconnects: number;
  /** Sends without an answer within --loss-after. */
  unacked: number;
  /** Sends waiting for their ack now. */
  pending: number;
  clients: number;
  clientsOpen: number;
  latency: LatencyHistogram;
  loopDelay: LoopDelay;
  rssBytes: number;
}

/** The canary's Prometheus text exposition (format 0.0.4). */
export function canaryMetricsText(f: CanaryFigures): string {
  const out: string[] = [];
  const counter = (name: string, help: string, value: number) =>
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
  const gauge = (name: string, help: string, value: number | [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    if (typeof value === 'number') out.push(`${name} ${value}`);
    else for (const [labels, v] of value) out.push(`${name}{${labels}} ${v}`);
  };
  counter('switchboard_probe_sent_total', 'Messages the canary sent', f.sent);
  counter('switchboard_probe_acked_total', 'Sends the server acked', f.acked);
  counter('switchboard_probe_failed_total', 'Sends the server refused for good', f.failed);
  counter(
    'switchboard_probe_delivered_total',
    'Deliveries of the canary’s messages, over all its clients',
    f.delivered,
  );
  counter(
    'switchboard_probe_lost_total',
    'Acked messages not delivered intact to a member of their room within --loss-after (one per member)',
    f.lost,
  );
  counter(
    'switchboard_probe_duplicates_total',
    'Deliveries of a seq or message a client already had',
    f.duplicates,
  );
  counter(
    'switchboard_probe_out_of_order_total',
    'Deliveries with a seq not above the previous one',
    f.outOfOrder,
  );
  counter(
    'switchboard_probe_reconnects_total',
    'Connections of the canary’s clients beyond their first',
    f.reconnects,
  );
  counter('switchboard_probe_unacked_total', 'Sends still without an answer after --loss-after', f.unacked);
  gauge('switchboard_probe_pending', 'Sends waiting for an ack now', f.pending);
  gauge('switchboard_probe_clients', 'Canary clients, by connection state', [
    ['state="open"', f.clientsOpen],
    ['state="other"', f.clients - f.clientsOpen],
  ]);
  const name = 'switchboard_probe_latency_seconds';
  out.push(
    `# HELP ${name} End to end: from the send call to the message at each member`,
    `# TYPE ${name} histogram`,
  );
  for (const le of LATENCY_BUCKETS_S)
    out.push(`${name}_bucket{le="${le}"} ${f.latency.countAtOrBelow(le * 1000)}`);
  out.push(
    `${name}_bucket{le="+Inf"} ${f.latency.count}`,
    `${name}_sum ${f.latency.sumMs / 1000}`,
    `${name}_count ${f.latency.count}`,
  );
  gauge(
    'switchboard_probe_event_loop_delay_seconds',
    'How late the canary’s own event loop ran over the last 10 s (sampling period excluded)',
    [
      ['quantile="0.99"', f.loopDelay.p99 / 1000],
      ['quantile="1"', f.loopDelay.max / 1000],
    ],
  );
  gauge('process_resident_memory_bytes', 'Resident memory of the canary process', f.rssBytes);
  return `${out.join('\n')}\n`;
}
