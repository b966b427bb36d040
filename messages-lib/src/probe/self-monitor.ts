/// <reference types="node" />
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** How often the loop-delay timer fires; subtracted from what it reports. */
const RESOLUTION_MS = 10;
const RSS_EVERY_MS = 1_000;

export interface LoopDelay {
  p99: number;
  max: number;
}

/**
 * The probe watching itself: how late its own event loop ran (a stall here delays every delivery
 * it timestamps, and looks like server latency) and its peak resident memory.
 */
export class SelfMonitor {
  private readonly total: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly recent: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly rssTimer: NodeJS.Timeout;
  private maxRss = process.memoryUsage.rss();
  private frozen: LoopDelay | undefined;

  constructor() {
    this.total.enable();
    this.recent.enable();
    this.rssTimer = setInterval(() => this.sampleRss(), RSS_EVERY_MS);
    this.rssTimer.unref();
  }

  /**
   * In ms, the sampling period subtracted: since `startWindow` (else since the start) until
   * `endWindow` (else until now).
   */
  loopDelay(): LoopDelay {
    return this.frozen ?? delayOf(this.total);
  }

  /** Delays count from here: the probe times deliveries from now on. */
  startWindow(): void {
    this.total.reset();
    this.frozen = undefined;
  }

  /** … until here: a stall while verifying at the end delays no delivery. */
  endWindow(): void {
    this.frozen ??= delayOf(this.total);
  }

  /** Since the previous call, then starts a new interval. */
  takeRecentLoopDelay(): LoopDelay {
    const d = delayOf(this.recent);
    this.recent.reset();
    return d;
  }

  maxRssMb(): number {
    this.sampleRss();
    return Math.round(this.maxRss / 1048576);
  }

  rssMb(): number {
    return Math.round(process.memoryUsage.rss() / 1048576);
  }

  stop(): void {
    this.sampleRss();
    clearInterval(this.rssTimer);
    this.total.disable();
    this.recent.disable();
  }

  private sampleRss(): void {
    this.maxRss = Math.max(this.maxRss, process.memoryUsage.rss());
  }
}

function delayOf(h: IntervalHistogram): LoopDelay {
  if (h.count === 0) return { p99: 0, max: 0 };
  const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 10) / 10);
  return { p99: ms(h.percentile(99)), max: ms(h.max) };
}

/**
 * A warning when the probe's own stalls could explain the latency it reports: a verdict about the
 * server must not rest on a saturated measurer.
 */
export function selfWarnings(own: LoopDelay, latency: { p99: number; max: number }): string[] {
  const warnings: string[] = [];
  const explainsP99 = own.p99 >= 10 && own.p99 >= latency.p99 / 2;
  const explainsMax = own.max >= 50 && own.max >= latency.max / 2;
  if (explainsP99 || explainsMax) {
    warnings.push(
      `the probe's own event loop ran up to ${own.max} ms late (p99 ${own.p99} ms), enough to explain ` +
        `${explainsP99 ? `the latency p99 (${latency.p99} ms)` : `the latency max (${latency.max} ms)`}: ` +
        'part of the reported latency may be the probe, not the server (use --workers, or fewer clients per probe)',
    );
  }
  return warnings;
}
