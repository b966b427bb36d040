export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles (p50, p99, max) in whole milliseconds; all 0 for no samples. */
export function percentiles(samples: readonly number[]): Percentiles {
  if (samples.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  return {
    p50: Math.round(rank(sorted, 50)),
    p99: Math.round(rank(sorted, 99)),
    max: Math.round(sorted[sorted.length - 1]!),
  };
}

function rank(sorted: Float64Array, p: number): number {
  const i = Math.max(0, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[i]!;
}

/**
 * The longest stretch of [from, to] without any of `times` (sorted or not). Times outside the
 * window are ignored, so a window without any gives `to - from`.
 */
export function longestGap(times: readonly number[], from: number, to: number): number {
  const inside = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let last = from;
  let longest = 0;
  for (const t of inside) {
    longest = Math.max(longest, t - last);
    last = t;
  }
  return Math.max(longest, to - last);
}
