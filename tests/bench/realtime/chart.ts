/**
 * RESULTS.png: horizontal bar charts of the fan-out figures, drawn as SVG and rendered to PNG by
 * Debian's Chromium (playwright-core drives it; no browser download).
 */
import { ensureDebianPackages } from '../../infra/debian.js';
import type { Row } from './report.js';

const COLORS = { sb: '#2563eb', ws: '#6b7280', sio: '#f59e0b', cent: '#16a34a' } as const;

interface Panel {
  title: string;
  value: (r: Row) => number | undefined;
  digits: number;
}

const PANELS: Panel[] = [
  {
    title: 'server CPU µs per delivery @ 40k deliveries/s (lower is better)',
    value: (r) => r.fanout?.fixed?.cpuPerDelivery,
    digits: 2,
  },
  {
    title: 'p99 latency ms @ 40k deliveries/s (lower is better)',
    value: (r) => r.fanout?.fixed?.p99,
    digits: 1,
  },
  {
    title: 'deliveries/s with no loss (higher is better; load generator bound near 100k)',
    value: (r) => r.fanout?.maxNoLoss,
    digits: 0,
  },
];

const SYSTEM_LABELS = {
  sb: 'Switchboard, durable',
  ws: 'raw ws broadcast',
  sio: 'Socket.IO 4',
  cent: 'Centrifugo 6.9.1, history',
} as const;

const CROSS_LABELS = {
  sb: 'Switchboard on Hazelcast (3 nodes)',
  ws: 'raw ws',
  sio: 'Socket.IO 4 + Redis (3 nodes)',
  cent: 'Centrifugo + Redis (3 nodes)',
} as const;

function chartLabel(r: Row): string {
  if (r.group !== 'crossnode') return `${SYSTEM_LABELS[r.system]} (1 node)`;
  return CROSS_LABELS[r.system];
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function chartSvg(rows: Row[]): string {
  const bars = rows.filter((r) => r.fanout);
  const width = 960;
  const labelW = 300;
  const barH = 22;
  const panelH = 40 + bars.length * (barH + 6);
  const height = 50 + PANELS.length * (panelH + 20);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="16" y="30" font-size="18" font-weight="bold">Switchboard vs raw ws, Socket.IO and Centrifugo — fan-out (tests/bench/RESULTS.md)</text>`,
  ];
  PANELS.forEach((p, i) => {
    const top = 50 + i * (panelH + 20);
    const values = bars.map((r) => p.value(r) ?? NaN);
    const max = Math.max(1e-9, ...values.filter(Number.isFinite));
    out.push(`<text x="16" y="${top + 20}" font-weight="bold">${esc(p.title)}</text>`);
    bars.forEach((r, j) => {
      const y = top + 32 + j * (barH + 6);
      const v = values[j]!;
      const w = Number.isFinite(v) ? ((width - labelW - 110) * v) / max : 0;
      out.push(
        `<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${esc(chartLabel(r))}</text>`,
        `<rect x="${labelW}" y="${y}" width="${Math.max(1, w)}" height="${barH}" fill="${COLORS[r.system]}"/>`,
        `<text x="${labelW + w + 6}" y="${y + 16}">${Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: p.digits }) : '—'}</text>`,
      );
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

export async function renderChart(rows: Row[], pngPath: string): Promise<void> {
  const svg = chartSvg(rows);
  const [chromium] = await ensureDebianPackages(['chromium']);
  const { chromium: launcher } = await import('playwright-core');
  const browser = await launcher.launch({ executablePath: chromium!, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    await page.locator('svg').screenshot({ path: pngPath });
  } finally {
    await browser.close();
  }
}
