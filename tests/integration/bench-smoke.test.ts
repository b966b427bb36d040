/**
 * The real-time benchmark runs and reports: the quick mode of its fan-out row (raw ws, Socket.IO
 * and a Switchboard node, real processes) writes RESULTS.md with every column. No performance
 * threshold here: the benchmark measures speed, this test checks that it works.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { FANOUT_COLUMNS, ROOMS_COLUMNS } from '../bench/realtime/report.js';
import { startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

describe('real-time benchmark (quick fan-out)', function () {
  this.timeout(300_000);
  let outDir: string;

  before(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'sb-bench-smoke-'));
  });
  after(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  it('writes a fan-out table with every column and a row per server', async () => {
    const proc = startProcess(
      'bench',
      process.execPath,
      ['--import', 'tsx', 'tests/bench/realtime.bench.ts'],
      {
        cwd: repoRoot,
        // Not Centrifugo: its Go build takes minutes, and the suite does not need it.
        env: {
          BENCH_QUICK: '1',
          BENCH_ROWS: 'fanout',
          BENCH_SYSTEMS: 'ws,sio,sb',
          BENCH_SUBSCRIBERS: '100',
          BENCH_OUT_DIR: outDir,
        },
      },
    );
    const { code } = await proc.exited;
    expect(code, proc.output().slice(-3000)).to.equal(0);
    const md = await readFile(join(outDir, 'RESULTS.md'), 'utf8');
    const header = md.split('\n').find((l) => l.startsWith('| row |'));
    expect(header, md).to.be.a('string');
    const columns = header!
      .split('|')
      .map((c) => c.trim())
      .filter(Boolean);
    expect(columns).to.deep.equal([...FANOUT_COLUMNS]);
    for (const name of ['raw ws broadcast', 'Socket.IO 4', 'Switchboard, 1 node']) {
      const line = md.split('\n').find((l) => l.startsWith(`| ${name}`));
      expect(line, `a row for ${name}`).to.be.a('string');
      const cells = line!.split('|').slice(1, -1);
      expect(cells).to.have.length(FANOUT_COLUMNS.length);
      // The figures that compare are measured, not left blank.
      expect(cells[2]!.trim(), `${name} p99`).to.match(/^[\d,.]+$/);
      expect(cells[3]!.trim(), `${name} CPU per delivery`).to.match(/^[\d,.]+$/);
    }
    const png = await readFile(join(outDir, 'RESULTS.png'));
    expect(png.subarray(1, 4).toString()).to.equal('PNG');
  });

  it('writes a many-rooms table (a small one) with every column and a row per server', async () => {
    const dir = join(outDir, 'rooms');
    const proc = startProcess(
      'bench-rooms',
      process.execPath,
      ['--import', 'tsx', 'tests/bench/realtime.bench.ts'],
      {
        cwd: repoRoot,
        env: {
          BENCH_ROWS: 'rooms',
          BENCH_SYSTEMS: 'ws,sio,sb',
          BENCH_ROOMS_CLIENTS: '200',
          BENCH_ROOMS_RATE: '100',
          BENCH_ROOMS_STEP_MS: '2000',
          BENCH_ROOMS_ROUNDS: '1',
          BENCH_OUT_DIR: dir,
        },
      },
    );
    const { code } = await proc.exited;
    expect(code, proc.output().slice(-3000)).to.equal(0);
    const md = await readFile(join(dir, 'RESULTS.md'), 'utf8');
    const header = md.split('\n').find((l) => l.startsWith(`| row | ${ROOMS_COLUMNS[1]} |`));
    expect(header, md).to.be.a('string');
    const columns = header!
      .split('|')
      .map((c) => c.trim())
      .filter(Boolean);
    expect(columns).to.deep.equal([...ROOMS_COLUMNS]);
    for (const name of ['raw ws, a room', 'Socket.IO 4, rooms', 'Switchboard, 1 node']) {
      const line = md.split('\n').find((l) => l.startsWith(`| ${name}`));
      expect(line, `a row for ${name}`).to.be.a('string');
      const cells = line!.split('|').slice(1, -1);
      expect(cells).to.have.length(ROOMS_COLUMNS.length);
      expect(cells[1]!.trim(), `${name} acked msgs/s`).to.match(/^[\d,.]+$/);
      expect(cells[5]!.trim(), `${name} p99`).to.match(/^[\d,.]+$/);
      expect(cells[6]!.trim(), `${name} CPU per delivery`).to.match(/^[\d,.]+$/);
    }
  });
});
