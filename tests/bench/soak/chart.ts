/**
 * SOAK.png: latency over time (the probe's per-2 s p50, p99 and max), with the probe's and the
 * server's loop delay and the server's RSS below, as SVG rendered to PNG by Debian's Chromium.
 */
import { ensureDebianPackages } from '../../infra/debian.js';
import type { SoakResult } from './report.js';

const W = 900;
const H = 260;
const PAD = { l: 60, r: 20, t: 30, b: 30 };

interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

function panel(
  title: string,
  unit: string,
  series: Series[],
  y0: number,
  xMax: number,
  yMax?: number,
): string {
  const all = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const top = yMax ?? niceMax(Math.max(1, ...all));
  const x = (v: number) => PAD.l + (v / xMax) * (W - PAD.l - PAD.r);
  const y = (v: number) => y0 + PAD.t + (1 - Math.min(v, top) / top) * (H - PAD.t - PAD.b);
  const parts = [
    `<text x="${PAD.l}" y="${y0 + 18}" font-size="14" font-family="sans-serif">${title}</text>`,
    `<line x1="${PAD.l}" y1="${y(0)}" x2="${W - PAD.r}" y2="${y(0)}" stroke="#999"/>`,
    `<line x1="${PAD.l}" y1="${y(top)}" x2="${PAD.l}" y2="${y(0)}" stroke="#999"/>`,
  ];
  for (const f of [0, 0.5, 1]) {
    parts.push(
      `<text x="${PAD.l - 5}" y="${y(top * f) + 4}" font-size="11" text-anchor="end" font-family="sans-serif">${Math.round(top * f)} ${unit}</text>`,
    );
  }
  for (let m = 0; m <= xMax / 60; m += Math.max(1, Math.round(xMax / 60 / 10))) {
    parts.push(
      `<text x="${x(m * 60)}" y="${y(0) + 14}" font-size="11" text-anchor="middle" font-family="sans-serif">${m} min</text>`,
    );
  }
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="1.2" points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`,
      `<text x="${W - PAD.r - 200 + 0}" y="${y0 + 18 + i * 14}" font-size="11" fill="${s.color}" font-family="sans-serif">${s.name}</text>`,
    );
  });
  return parts.join('\n');
}

function niceMax(v: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function soakSvg(r: SoakResult): string {
  const ticks = r.ticks.filter((t) => t.phase === 'sending');
  const xMax = Math.max(60, ...ticks.map((t) => t.t));
  const lat: Series[] = [
    { name: 'end-to-end max', color: '#dc2626', points: ticks.map((t) => [t.t, t.latencyMs.max]) },
    { name: 'end-to-end p99', color: '#2563eb', points: ticks.map((t) => [t.t, t.latencyMs.p99]) },
    { name: 'end-to-end p50', color: '#16a34a', points: ticks.map((t) => [t.t, t.latencyMs.p50]) },
  ];
  const sendStart = r.samples.find((s) => s.phase === 'sending')?.t ?? 0;
  const server = r.samples.filter((s) => s.phase === 'sending');
  const lag: Series[] = [
    { name: 'probe loop delay max', color: '#9333ea', points: ticks.map((t) => [t.t, t.loopDelayMs.max]) },
    {
      name: 'server loop delay max',
      color: '#ea580c',
      points: server.map((s) => [s.t - sendStart, s.serverLoopDelayMs.max]),
    },
  ];
  const rss: Series[] = [
    { name: 'server RSS', color: '#0f766e', points: server.map((s) => [s.t - sendStart, s.serverRssMb]) },
    { name: 'probe RSS', color: '#9333ea', points: ticks.map((t) => [t.t, t.rssMb]) },
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${3 * H}" style="background:#fff">`,
    panel(
      `Latency per 2 s interval, ${r.load.clients} clients / ${r.load.rooms} rooms / ${r.load.rate} msg/s + churn`,
      'ms',
      lat,
      0,
      xMax,
      250,
    ),
    panel('Event loop delay (sampling period excluded)', 'ms', lag, H, xMax),
    panel('Resident memory', 'MB', rss, 2 * H, xMax),
    '</svg>',
  ].join('\n');
}

export async function renderSoakChart(r: SoakResult, pngPath: string): Promise<void> {
  const [chromium] = await ensureDebianPackages(['chromium']);
  const { chromium: launcher } = await import('playwright-core');
  const browser = await launcher.launch({ executablePath: chromium!, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.setContent(`<html><body style="margin:0">${soakSvg(r)}</body></html>`);
    await page.locator('svg').screenshot({ path: pngPath });
  } finally {
    await browser.close();
  }
}
