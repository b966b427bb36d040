import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type ManagedProcess, removeOnExit, startProcess, waitFor } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const cli = fileURLToPath(new URL('../../messages-lib/src/probe/cli.ts', import.meta.url));

/** The value of an unlabelled sample (or one with exactly `labels`) in Prometheus text. */
function sample(text: string, name: string, labels = ''): number {
  const key = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(key));
  return line ? Number(line.slice(key.length)) : NaN;
}

function startCanary(args: string[]): ManagedProcess {
  return startProcess('canary', process.execPath, ['--import', 'tsx', cli, '--canary', ...args], {
    cwd: repoRoot,
  });
}

/**
 * `switchboard-probe --canary` against a real embedded node (the product's main.ts, LevelDB store)
 * that acks one message and drops it (SWITCHBOARD_TEST_ACK_AND_DROP, a test-only fault point of the chat service): the
 * canary counts that loss at both members of the room within --loss-after, serves it on /metrics,
 * and exits 0 on SIGTERM after closing its clients.
 */
describe('switchboard-probe --canary on a real node', function () {
  this.timeout(120_000);
  let node: ManagedProcess;
  let url: string;

  before(async function () {
    this.timeout(60_000);
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-canary-'));
    removeOnExit(dataDir);
    node = startProcess('node', process.execPath, ['--import', 'tsx', 'backend/src/main.ts'], {
      cwd: repoRoot,
      env: {
        HOST: '127.0.0.1',
        PORT: String(port),
        GRPC_PORT: '0',
        ADMIN_PORT: '0',
        DATA_DIR: dataDir,
        LOG_LEVEL: 'info',
        NODE_ENV: 'test',
        // The canary's 5th message (key 4; the text is probe:<run>:<key>).
        SWITCHBOARD_TEST_ACK_AND_DROP: '^probe:[0-9a-f]+:4$',
      },
    });
    await node.waitForOutput(`switchboard node listening on http://127.0.0.1:${port}`, 45_000);
    url = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await node?.stop();
  });

  it('counts an acked-then-dropped message as lost at every member, serves the metrics, exits 0 on SIGTERM', async () => {
    // 4 clients in 2 rooms: message 4 goes out from client 0, in room 0 with client 2.
    const canary = startCanary([
      '--url',
      url,
      '--clients',
      '4',
      '--rooms',
      '2',
      '--rate',
      '10',
      '--loss-after',
      '5',
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
    ]);
    try {
      const m = (await canary.waitForOutput(
        /probe: canary metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/,
        60_000,
      )) as RegExpMatchArray;
      const metricsUrl = m[1]!;
      const scrape = async () => {
        const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
        expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
        return res.text();
      };
      // The dropped message is judged 5 s after its ack; then enough traffic that the messages
      // around it have been judged too (a busy machine may delay a delivery, not by 5 s).
      await waitFor(
        'the dropped message counted as lost',
        async () => sample(await scrape(), 'switchboard_probe_lost_total') >= 2,
        60_000,
        500,
      );
      await waitFor(
        '100 acked canary messages',
        async () => sample(await scrape(), 'switchboard_probe_acked_total') >= 100,
        60_000,
        500,
      );
      const text = await scrape();
      expect(sample(text, 'switchboard_probe_lost_total'), 'the dropped message, at both members').to.equal(
        2,
      );
      expect(sample(text, 'switchboard_probe_duplicates_total')).to.equal(0);
      expect(sample(text, 'switchboard_probe_out_of_order_total')).to.equal(0);
      expect(sample(text, 'switchboard_probe_reconnects_total')).to.equal(0);
      expect(sample(text, 'switchboard_probe_sent_total')).to.be.at.least(100);
      // 2 members per room get each message (the dropped one aside).
      expect(sample(text, 'switchboard_probe_delivered_total')).to.be.at.least(2 * 50);
      expect(sample(text, 'switchboard_probe_latency_seconds_count')).to.be.greaterThan(0);
      expect(sample(text, 'switchboard_probe_latency_seconds_bucket', 'le="+Inf"')).to.equal(
        sample(text, 'switchboard_probe_latency_seconds_count'),
      );
      expect(sample(text, 'switchboard_probe_event_loop_delay_seconds', 'quantile="1"')).to.be.at.least(0);
      expect(sample(text, 'switchboard_probe_clients', 'state="open"')).to.equal(4);
      expect(canary.output()).to.match(/probe: canary lost \{"kind":"lost","room":"canary-[0-9a-f]+-0"/);

      canary.kill('SIGTERM');
      const exit = await canary.exited;
      expect(exit.code, canary.output().slice(-2000)).to.equal(0);
      const line = canary
        .output()
        .split('\n')
        .find((l) => l.startsWith('{"canary":true'));
      const report = JSON.parse(line!) as { ok: boolean; lost: number; duplicates: number; sent: number };
      expect(report).to.include({ ok: false, lost: 2, duplicates: 0 });
      await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) }).then(
        () => expect.fail('the metrics endpoint is closed after exit'),
        () => {},
      );
    } finally {
      await canary.stop();
    }
  });

  it('refuses a metrics port in use with exit 2 naming the flag', async () => {
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    const canary = startCanary(['--url', url, '--metrics-port', String(port), '--metrics-host', '127.0.0.1']);
    try {
      const exit = await canary.exited;
      expect(exit.code).to.equal(2);
      expect(canary.output()).to.contain(
        `switchboard-probe: --metrics-port: port ${port} on 127.0.0.1 is in use`,
      );
    } finally {
      await canary.stop();
      await new Promise((r) => blocker.close(r));
    }
  });
});
