/**
 * The value of a metric in a Prometheus text page, summed over its label sets; with `labels`,
 * over the label sets that carry every one of those labels with those values. 0 when absent.
 */
export function metric(page: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of page.split('\n')) {
    let rest: string;
    if (line.startsWith(`${name} `)) rest = '';
    else if (line.startsWith(`${name}{`)) rest = line.slice(name.length + 1, line.lastIndexOf('}'));
    else continue;
    const have = rest === '' ? [] : rest.split(',');
    if (wanted.every((w) => have.includes(w))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** `metric` summed over several pages (one per node). */
export function metricTotal(
  pages: readonly string[],
  name: string,
  labels: Record<string, string> = {},
): number {
  return pages.reduce((n, p) => n + metric(p, name, labels), 0);
}
