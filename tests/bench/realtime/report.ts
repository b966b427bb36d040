/** RESULTS.md of the real-time benchmark: one table per row group, ratios to the peers. */
import type { FanoutResult } from './fanout.js';
import { CENT_CLIENT_NOTE } from './peers/centrifugo.js';
import { middle } from './protocol.js';
import type { RoomsResult, RoomsStep } from './rooms.js';

export type System = 'sb' | 'ws' | 'sio' | 'cent';
export type Group = 'fanout' | 'crossnode' | 'rooms' | 'ingest' | 'storm' | 'footprint';

export interface Row {
  group: Group;
  name: string;
  system: System;
  fanout?: FanoutResult;
  rooms?: RoomsResult;
  /** The row's figure for groups other than fan-out (see METRICS). */
  value?: number;
  /** Extra facts shown beside the figure (e.g. lost = 0, duplicates = 0). */
  note?: string;
}

/** The fan-out table's columns: the smoke test checks that each is there. */
export const FANOUT_COLUMNS = [
  'row',
  'deliveries/s, no loss',
  'p99 ms @ 40k/s',
  'server CPU µs/delivery @ 40k/s',
  'CPU × raw ws',
  'CPU × Socket.IO',
  'CPU × Centrifugo',
  'p99 × raw ws',
  'p99 × Socket.IO',
  'p99 × Centrifugo',
] as const;

/** The peers Switchboard's rows are compared with, in table order. */
const PEERS = ['ws', 'sio', 'cent'] as const;
const PEER_LABEL: Record<(typeof PEERS)[number], string> = {
  ws: 'raw ws',
  sio: 'Socket.IO',
  cent: 'Centrifugo',
};

const METRICS: Record<
  Exclude<Group, 'fanout' | 'crossnode' | 'rooms'>,
  { title: string; unit: string; better: 'higher' | 'lower' }
> = {
  ingest: { title: 'Durable ingest (1 node, FerretDB)', unit: 'acked msgs/s', better: 'higher' },
  storm: {
    title: 'Reconnect storm (node killed)',
    unit: 'seconds until all back and caught up',
    better: 'lower',
  },
  footprint: {
    title: 'Footprint (idle connections)',
    unit: 'RSS bytes per idle connection',
    better: 'lower',
  },
};

const num = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n)
    ? '—'
    : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? '—'
    : `${(a / b).toFixed(2)}×`;

/** Peers missing from a group (cross-node has no raw ws) are taken from the 1-node fan-out rows. */
function fanoutTable(title: string, rows: Row[], fallback: Row[]): string {
  const peer = (s: System) =>
    (rows.find((r) => r.system === s) ?? fallback.find((r) => r.system === s))?.fanout?.fixed;
  const ws = peer('ws');
  const sio = peer('sio');
  const cent = peer('cent');
  const lines = [
    `### ${title}`,
    '',
    `| ${FANOUT_COLUMNS.join(' | ')} |`,
    `|---|${FANOUT_COLUMNS.slice(1)
      .map(() => '---:')
      .join('|')}|`,
  ];
  for (const r of rows) {
    const f = r.fanout;
    const fixed = f?.fixed;
    lines.push(
      `| ${r.name} | ${num(f?.maxNoLoss)} | ${num(fixed?.p99, 1)} | ${num(fixed?.cpuPerDelivery, 2)} | ` +
        `${ratio(fixed?.cpuPerDelivery, ws?.cpuPerDelivery)} | ${ratio(fixed?.cpuPerDelivery, sio?.cpuPerDelivery)} | ` +
        `${ratio(fixed?.cpuPerDelivery, cent?.cpuPerDelivery)} | ` +
        `${ratio(fixed?.p99, ws?.p99)} | ${ratio(fixed?.p99, sio?.p99)} | ${ratio(fixed?.p99, cent?.p99)} |`,
    );
  }
  lines.push(...pairedRounds(rows));
  lines.push(...ladder(rows));
  lines.push(
    '',
    '<details><summary>every step</summary>',
    '',
    '| row | target/s | received/s | received / expected | p50 ms | p99 ms | µs/delivery | server cores |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of rows) {
    for (const s of r.fanout?.steps ?? []) {
      lines.push(
        `| ${r.name} | ${num(s.target)} | ${num(s.achieved)} | ${num(s.received)} / ${num(s.expected)}${s.ok ? '' : ' ✗'} | ` +
          `${num(s.p50, 1)} | ${num(s.p99, 1)} | ${num(s.cpuPerDelivery, 2)} | ${num(s.cores, 2)} |`,
      );
    }
  }
  lines.push('', '</details>', '');
  return lines.join('\n');
}

/**
 * The fixed-rate runs round by round: every system's run k took place within seconds of the
 * others', so the per-round ratio is the comparison least disturbed by the machine's drift.
 */
function pairedRounds(rows: Row[]): string[] {
  const sb = rows.find((r) => r.system === 'sb');
  const peers = PEERS.map((system) => rows.find((r) => r.system === system)).filter(
    (r): r is Row => r !== undefined,
  );
  const runs = (r: Row) => r.fanout?.fixedRuns ?? [];
  if (!sb || peers.length === 0 || runs(sb).length < 2) return [];
  const rounds = Math.min(...[sb, ...peers].map((r) => runs(r).length));
  const lines = [
    '',
    `Server CPU µs/delivery at 40k/s, round by round (each round runs every system once, in rotating order):`,
    '',
    `| round | ${[...peers, sb].map((r) => r.name).join(' | ')} | ${peers.map((p) => `Switchboard × ${PEER_LABEL[p.system as (typeof PEERS)[number]]}`).join(' | ')} |`,
    `|---:|${[...peers, sb, ...peers].map(() => '---:').join('|')}|`,
  ];
  const ratios: number[][] = peers.map(() => []);
  for (let k = 0; k < rounds; k++) {
    const mine = runs(sb)[k]!.cpuPerDelivery;
    const cells = [...peers, sb].map((r) => num(runs(r)[k]!.cpuPerDelivery, 2));
    const rs = peers.map((p, j) => {
      const x = mine / runs(p)[k]!.cpuPerDelivery;
      ratios[j]!.push(x);
      return `${x.toFixed(2)}×`;
    });
    lines.push(`| ${k + 1} | ${cells.join(' | ')} | ${rs.join(' | ')} |`);
  }
  lines.push(
    `| median | ${[...peers, sb]
      .map((r) =>
        num(
          middle(
            runs(r)
              .slice(0, rounds)
              .map((x) => x.cpuPerDelivery),
          ),
          2,
        ),
      )
      .join(' | ')} | ` +
      `${ratios.map((xs) => `**${middle(xs).toFixed(2)}×** (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`).join(' | ')} |`,
  );
  return lines;
}

/**
 * The rate ladder at a glance: p99 per step for every system, a step with loss (or p99 ≥ 1 s)
 * marked ✗ with the share received; blank where a system stopped (it failed a lower step).
 */
function ladder(rows: Row[]): string[] {
  const targets = [...new Set(rows.flatMap((r) => (r.fanout?.steps ?? []).map((s) => s.target)))].sort(
    (a, b) => a - b,
  );
  if (targets.length < 2) return [];
  const lines = [
    '',
    'p99 ms per rate step (deliveries/s; ✗: loss or p99 ≥ 1 s, with the share received):',
    '',
    `| row | ${targets.map((t) => `${t / 1000}k`).join(' | ')} |`,
    `|---|${targets.map(() => '---:').join('|')}|`,
  ];
  for (const r of rows) {
    const cells = targets.map((t) => {
      const s = r.fanout?.steps.find((x) => x.target === t);
      if (!s) return '';
      const lost = s.ok ? '' : ` ✗ ${((100 * s.received) / Math.max(1, s.expected)).toFixed(1)}%`;
      return `${num(s.p99, 1)}${lost}`;
    });
    lines.push(`| ${r.name} | ${cells.join(' | ')} |`);
  }
  return lines;
}

/** The many-rooms table's columns: the figures are the median of the rounds. */
export const ROOMS_COLUMNS = [
  'row',
  'acked msgs/s',
  'deliveries/s',
  'lost',
  'p50 ms',
  'p99 ms',
  'server CPU µs/delivery',
  'CPU × raw ws',
  'CPU × Socket.IO',
  'CPU × Centrifugo',
  'idle server cores',
] as const;

/** Deliveries lost over every round of a row, as "n (x %)". */
function lostOf(steps: RoomsStep[]): string {
  const expected = steps.reduce((n, s) => n + s.expected, 0);
  const lost = steps.reduce((n, s) => n + Math.max(0, s.expected - s.received), 0);
  const notAcked = steps.reduce((n, s) => n + (s.sent - s.acked), 0);
  const refused = steps.reduce((n, s) => n + s.failed, 0);
  const share = expected > 0 ? ` (${((100 * lost) / expected).toFixed(lost === 0 ? 0 : 3)} %)` : '';
  const sends =
    notAcked === 0
      ? ''
      : `; ${num(notAcked)} sends not acked (${num(refused)} refused, ${num(notAcked - refused)} unanswered in 15 s)`;
  return `${num(lost)}${share}${sends}`;
}

function roomsTable(rows: Row[], notes: string[]): string {
  const first = rows.find((r) => r.rooms)?.rooms;
  if (!first) return '';
  const med = (s: System) => rows.find((r) => r.system === s)?.rooms?.median;
  const ws = med('ws');
  const sio = med('sio');
  const cent = med('cent');
  const rooms = first.clients / first.roomSize;
  const perClient = first.clients / first.rate;
  const lines = [
    `### Many rooms (1 node): ${num(first.clients)} clients in ${num(rooms)} rooms of ${first.roomSize}, every client sending`,
    '',
    `${num(first.rate)} messages/s in all (each client one message every ${perClient.toFixed(1)} s on average, ` +
      `${num(first.rate * first.roomSize)} deliveries/s: the sender receives its own message too), ` +
      `${first.stepMs / 1000} s per step, one warm-up step per system, then ${first.rounds.length} round${first.rounds.length === 1 ? '' : 's'} ` +
      `of one step per system in rotating order; figures are the median of the rounds, lost is over every round. ` +
      `The load generator (${first.generators} processes per system) shares the machine's cores with the servers.`,
    ...notes.map((n) => `- ${n}`),
    '',
    `| ${ROOMS_COLUMNS.join(' | ')} |`,
    `|---|${ROOMS_COLUMNS.slice(1)
      .map(() => '---:')
      .join('|')}|`,
  ];
  for (const r of rows) {
    const m = r.rooms?.median;
    lines.push(
      `| ${r.name} | ${num(m?.ackedPerSec)} | ${num(m?.deliveriesPerSec)} | ${lostOf(r.rooms?.rounds ?? [])} | ` +
        `${num(m?.p50, 1)} | ${num(m?.p99, 1)} | ${num(m?.cpuPerDelivery, 2)} | ` +
        `${ratio(m?.cpuPerDelivery, ws?.cpuPerDelivery)} | ${ratio(m?.cpuPerDelivery, sio?.cpuPerDelivery)} | ` +
        `${ratio(m?.cpuPerDelivery, cent?.cpuPerDelivery)} | ${num(r.rooms?.idleCores, 3)} |`,
    );
  }
  lines.push(
    '',
    `Idle server cores: the server's CPU over 5 s after the warm-up, its ${num(first.clients)} clients connected and no system sending (pings, timers).`,
  );
  lines.push(...roomsPaired(rows));
  lines.push(
    '',
    '<details><summary>every step</summary>',
    '',
    '| row | step | sent | acked | refused (why) | received / expected | p50 ms | p99 ms | µs/delivery | server cores |',
    '|---|---|---:|---:|---|---:|---:|---:|---:|---:|',
  );
  for (const r of rows) {
    const steps: [string, RoomsStep | undefined][] = [
      ['warm-up', r.rooms?.warmup],
      ...(r.rooms?.rounds ?? []).map((s, k): [string, RoomsStep] => [`round ${k + 1}`, s]),
    ];
    for (const [label, s] of steps) {
      if (!s) continue;
      lines.push(
        `| ${r.name} | ${label} | ${num(s.sent)} | ${num(s.acked)} | ${s.errors.map(([why, n]) => `${num(n)} × ${why}`).join('; ')} | ` +
          `${num(s.received)} / ${num(s.expected)}${s.ok ? '' : ' ✗'} | ` +
          `${num(s.p50, 1)} | ${num(s.p99, 1)} | ${num(s.cpuPerDelivery, 2)} | ${num(s.cores, 2)} |`,
      );
    }
  }
  lines.push('', '</details>', '');
  return lines.join('\n');
}

/** The many-rooms rounds side by side: CPU per delivery and p99, Switchboard ÷ each peer per round. */
function roomsPaired(rows: Row[]): string[] {
  const sb = rows.find((r) => r.system === 'sb');
  const peers = PEERS.map((system) => rows.find((r) => r.system === system)).filter(
    (r): r is Row => r !== undefined,
  );
  const runs = (r: Row) => r.rooms?.rounds ?? [];
  if (!sb || peers.length === 0 || runs(sb).length === 0) return [];
  const rounds = Math.min(...[sb, ...peers].map((r) => runs(r).length));
  const label = (p: Row) => PEER_LABEL[p.system as (typeof PEERS)[number]];
  const lines = [
    '',
    'Round by round (each round runs every system once, in rotating order): server CPU µs/delivery, and Switchboard ÷ each peer for CPU and p99:',
    '',
    `| round | ${[...peers, sb].map((r) => r.name).join(' | ')} | ${peers.map((p) => `CPU SB ÷ ${label(p)}`).join(' | ')} | ${peers.map((p) => `p99 SB ÷ ${label(p)}`).join(' | ')} |`,
    `|---:|${[...peers, sb, ...peers, ...peers].map(() => '---:').join('|')}|`,
  ];
  const cpuRatios: number[][] = peers.map(() => []);
  const p99Ratios: number[][] = peers.map(() => []);
  for (let k = 0; k < rounds; k++) {
    const mine = runs(sb)[k]!;
    const cells = [...peers, sb].map((r) => num(runs(r)[k]!.cpuPerDelivery, 2));
    const cpu = peers.map((p, j) => {
      const x = mine.cpuPerDelivery / runs(p)[k]!.cpuPerDelivery;
      cpuRatios[j]!.push(x);
      return `${x.toFixed(2)}×`;
    });
    const p99 = peers.map((p, j) => {
      const x = mine.p99 / runs(p)[k]!.p99;
      p99Ratios[j]!.push(x);
      return `${x.toFixed(2)}×`;
    });
    lines.push(`| ${k + 1} | ${cells.join(' | ')} | ${cpu.join(' | ')} | ${p99.join(' | ')} |`);
  }
  const span = (xs: number[]) =>
    `**${middle(xs).toFixed(2)}×** (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  lines.push(
    `| median (min–max) | ${[...peers, sb]
      .map((r) =>
        num(
          middle(
            runs(r)
              .slice(0, rounds)
              .map((x) => x.cpuPerDelivery),
          ),
          2,
        ),
      )
      .join(' | ')} | ${cpuRatios.map(span).join(' | ')} | ${p99Ratios.map(span).join(' | ')} |`,
  );
  return lines;
}

function metricTable(group: keyof typeof METRICS, rows: Row[]): string {
  const m = METRICS[group];
  const ws = rows.find((r) => r.system === 'ws')?.value;
  const sio = rows.find((r) => r.system === 'sio')?.value;
  const cent = rows.find((r) => r.system === 'cent')?.value;
  const lines = [
    `### ${m.title}`,
    '',
    `| row | ${m.unit} (${m.better} is better) | × raw ws | × Socket.IO | × Centrifugo | notes |`,
    '|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const digits = group === 'storm' ? 2 : 0;
    lines.push(
      `| ${r.name} | ${num(r.value, digits)} | ${ratio(r.value, ws)} | ${ratio(r.value, sio)} | ${ratio(r.value, cent)} | ${r.note ?? ''} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

export interface RunMeta {
  date: string;
  quick: boolean;
  subscribers: number;
  stepMs: number;
  /** Runs of the fixed-rate step per system. */
  fixedRounds: number;
  loadBefore: number;
  loadAfter: number;
  minutes: number;
  /** [peer, configuration] of the peers that need one (Centrifugo), secrets masked. */
  peerConfigs?: [string, string][];
  /** Lines printed under the many-rooms table (settings changed from a system's defaults). */
  roomsNotes?: string[];
}

export function resultsMarkdown(rows: Row[], meta: RunMeta): string {
  const parts = [
    '# Real-time benchmark results',
    '',
    `Generated by \`npm run bench\`${meta.quick ? ' (BENCH_QUICK=1: short steps, fewer subscribers — not for comparison)' : ''} ` +
      `on ${meta.date.slice(0, 16).replace('T', ' ')} UTC, 2 cores, in ${meta.minutes.toFixed(1)} min. ` +
      `Load average (1 min) ${meta.loadBefore.toFixed(2)} before, ${meta.loadAfter.toFixed(2)} after: ` +
      'other work shared the cores, so compare rows of one run (ratios), not absolute numbers across runs.',
    '',
    `Fan-out: ${meta.subscribers.toLocaleString('en-US')} subscribers in one room, one publisher, ` +
      `${meta.stepMs / 1000} s per rate step; the systems of a table run side by side, their steps interleaved, and the 40k/s figures are the median of ${meta.fixedRounds} run${meta.fixedRounds === 1 ? '' : 's'} of that step. "No loss" = every message reached every subscriber and p99 < 1 s. ` +
      'CPU is user + system time of the server processes from /proc, over the step, divided by deliveries. ' +
      "Ratios: the row's figure over the peer's (for CPU and p99, below 1× is better).",
    '',
  ];
  if (meta.peerConfigs?.length) {
    parts.push('Peer configuration (secrets masked; random per run):', '');
    for (const [peer, config] of meta.peerConfigs) parts.push(`- ${peer}: \`${config}\``);
    parts.push(`- Centrifugo ${CENT_CLIENT_NOTE}.`, '');
  }
  const fan = rows.filter((r) => r.group === 'fanout');
  if (fan.length) parts.push(fanoutTable('Fan-out (1 node)', fan, fan));
  const cross = rows.filter((r) => r.group === 'crossnode');
  if (cross.length)
    parts.push(
      fanoutTable(
        'Cross-node (3 nodes; senders on one node, receivers on all; × raw ws is to the 1-node ceiling)',
        cross,
        fan,
      ),
    );
  const rooms = rows.filter((r) => r.group === 'rooms');
  if (rooms.length) parts.push(roomsTable(rooms, meta.roomsNotes ?? []));
  for (const g of ['ingest', 'storm', 'footprint'] as const) {
    const list = rows.filter((r) => r.group === g);
    if (list.length) parts.push(metricTable(g, list));
  }
  return parts.join('\n');
}
