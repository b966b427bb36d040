import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/**
 * The `nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds` gauges, as prom-client
 * names them, but telling the truth: prom-client reports the time between ticks of its sampling
 * timer, so with a 100 ms period an idle node reads 0.1 s and one stalling 100 ms reads 0.2 s. These
 * subtract the period, so 0 means the loop ran on time and the figure is the stall itself. Like
 * prom-client's, each scrape reads the delays since the previous scrape and starts a new interval.
 */
export const LAG_GAUGES = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const;

export function lagGaugeName(stat: (typeof LAG_GAUGES)[number]): string {
  return `nodejs_eventloop_lag_${stat}_seconds`;
}

/** Replaces prom-client's lag gauges in `registry` by ones without the sampling period. */
export function registerEventLoopDelay(registry: Registry, samplePeriodMs: number): IntervalHistogram {
  for (const stat of LAG_GAUGES) registry.removeSingleMetric(lagGaugeName(stat));
  const histogram = monitorEventLoopDelay({ resolution: samplePeriodMs });
  histogram.enable();
  const seconds = (ns: number): number => Math.max(0, ns / 1e9 - samplePeriodMs / 1e3);
  const read: Record<(typeof LAG_GAUGES)[number], () => number> = {
    min: () => seconds(histogram.min),
    max: () => seconds(histogram.max),
    mean: () => seconds(histogram.mean),
    stddev: () => histogram.stddev / 1e9,
    p50: () => seconds(histogram.percentile(50)),
    p90: () => seconds(histogram.percentile(90)),
    p99: () => seconds(histogram.percentile(99)),
  };
  // The first gauge reads all of them at once, then starts the next interval (prom-client
  // collects a registry's metrics in the order they were registered).
  const collect = (): void => {
    LAG_GAUGES.forEach((stat, i) => gauges[i]!.set(histogram.count === 0 ? 0 : read[stat]()));
    histogram.reset();
  };
  const gauges: Gauge[] = LAG_GAUGES.map(
    (stat, i) =>
      new Gauge({
        name: lagGaugeName(stat),
        help: `Event loop delay since the previous scrape, ${stat}; the sampling period (${samplePeriodMs} ms) is excluded, so 0 = on time`,
        registers: [registry],
        ...(i === 0 ? { collect } : {}),
      }),
  );
  return histogram;
}
