/** The q-quantile (0..1) of ascending `sorted` samples, by index floor(q·n); NaN for none. */
export function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
