import type { LatencyHistogram } from './histogram.js';
import type { RejoinTrace } from './rejoin-traces.js';
import type { LoopDelay } from './self-monitor.js';
import type { SlowDelivery } from './slowest-deliveries.js';
import type { Percentiles } from './stats.js';
import type { Verification } from './verify.js';

/** One progress interval, for timelines (the soak's latency-over-time plot). */
export interface ProbeTick {
  /** Seconds since sending began (negative while connecting). */
  t: number;
  phase: string;
  sent: number;
  acked: number;
  delivered: number;
  reconnects: number;
  /** Deliveries' latency within this interval. */
  latencyMs: Percentiles;
  probeEventLoopDelayMs: LoopDelay;
  probeRssMb: number;
}

export interface ProbeReport extends Verification {
  /** lost = duplicates = outOfOrder = 0, nothing left unacked, the store checked, not aborted. */
  ok: boolean;
  /** Why not ok, one line each (empty when ok). */
  reasons: string[];
  aborted?: string;
  clients: number;
  rooms: number;
  rate: number;
  /** Seconds of sending asked for, and as measured. */
  durationS: number;
  sendingS: number;
  /** Seconds spent settling, and whether everything settled before `--settle` ran out. */
  settleS: number;
  settled: boolean;
  /** Clients per node (from the servers' hellos) after connecting and at the end. */
  nodes: { start: Record<string, number>; end: Record<string, number> };
  runId: string;
  roomPrefix: string;
  urls: string[];
  /** The probe's own event loop: how late it ran (p99, max over the run, sampling period subtracted). */
  probeEventLoopDelayMs: LoopDelay;
  /** The probe process's peak resident memory. */
  probeMaxRssMb: number;
  /** Doubts about the measurement itself (the probe's own stalls); they do not change `ok`. */
  warnings: string[];
  /**
   * How long clients were away, per reconnection: from the connection's loss to the room joined
   * again (percentiles in ms; `count` reconnections that ended in a rejoin).
   */
  rejoinMs: Percentiles & { count: number };
  /** The slowest of those reconnections, step by step (see rejoin-traces.ts). */
  slowestRejoins: RejoinTrace[];
  /** The slowest deliveries, with the sender's ack time (see slowest-deliveries.ts). */
  slowestDeliveries: SlowDelivery[];
  /**
   * The latest mark (`marks`, SIGUSR2): seconds after sending began, and ms from it until the
   * last message sent before it was acked and delivered to every member (meaningful when `ok`).
   */
  mark?: { atS: number; drainedMs: number };
}

/** A report and what merging several (workers) needs beyond it. */
export interface RawProbeResult {
  report: ProbeReport;
  latency: LatencyHistogram;
  ackLatency: LatencyHistogram;
  /** Connection lost → room joined again, per reconnection. */
  rejoin: LatencyHistogram;
  /** Per client, the longest delivery gap (ms). */
  gaps: number[];
}
