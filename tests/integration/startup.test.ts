import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, removeOnExit, startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const main = 'backend/src/main.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'sb-startup-'));
removeOnExit(dataDir);

function runMain(name: string, env: Record<string, string>) {
  return startProcess(name, process.execPath, ['--import', 'tsx', main], {
    cwd: repoRoot,
    env: { HOST: '127.0.0.1', GRPC_PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'info', DATA_DIR: dataDir, ...env },
  });
}

describe('backend start-up', function () {
  this.timeout(60_000);

  it('starts on the embedded defaults, serves /health and /ready, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const proc = runMain('standalone', { PORT: String(port) });
    try {
      await proc.waitForOutput(`switchboard node listening on http://127.0.0.1:${port}`, 30_000);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).to.equal(200);
      expect(await health.json()).to.include({ status: 'up' });
      const ready = await fetch(`http://127.0.0.1:${port}/ready`);
      expect(ready.status).to.equal(200);
      expect(await ready.json()).to.deep.include({
        status: 'ready',
        checks: { cluster: true, accepting: true },
        degraded: [],
      });
      proc.kill('SIGTERM');
      expect(await proc.exited).to.deep.equal({ code: 0, signal: null });
    } finally {
      await proc.stop();
    }
  });

  const badEnvs: [string, Record<string, string>, RegExp][] = [
    [
      'a non-numeric PORT',
      { PORT: 'eighty' },
      /PORT: expected a whole number from 0 to 65535 \(got "eighty"\)/,
    ],
    ['an out-of-range PORT', { PORT: '70000' }, /PORT: expected a whole number/],
    [
      'an unknown CLUSTER_MODE',
      { CLUSTER_MODE: 'zookeeper' },
      /CLUSTER_MODE: .*"standalone"\|"hazelcast".*\(got "zookeeper"\)/,
    ],
    [
      'hazelcast without members',
      { CLUSTER_MODE: 'hazelcast' },
      /HAZELCAST_MEMBERS: required when CLUSTER_MODE=hazelcast/,
    ],
    [
      'malformed members',
      { CLUSTER_MODE: 'hazelcast', HAZELCAST_MEMBERS: 'localhost' },
      /HAZELCAST_MEMBERS: expected a comma-separated list of host:port/,
    ],
    ['a lease too short', { CLUSTER_LEASE_MS: '5' }, /CLUSTER_LEASE_MS: expected a whole number from 300/],
    ['a bad LOG_LEVEL', { LOG_LEVEL: 'loud' }, /LOG_LEVEL:/],
    [
      'a wildcard bus host without a public host',
      { CLUSTER_MODE: 'hazelcast', HAZELCAST_MEMBERS: '127.0.0.1:5701', CLUSTER_HOST: '0.0.0.0' },
      /CLUSTER_PUBLIC_HOST: required/,
    ],
    [
      'a drain window that does not fit the shutdown deadline',
      { DRAIN_WINDOW_MS: '40000', SHUTDOWN_TIMEOUT_MS: '30000' },
      /DRAIN_WINDOW_MS: the drain window plus DRAIN_GRPC_GRACE_MS \(50000 ms\) must be shorter than SHUTDOWN_TIMEOUT_MS \(30000 ms\)/,
    ],
  ];
  for (const [what, env, expected] of badEnvs) {
    it(`refuses to start with ${what}, naming the variable`, async () => {
      const proc = runMain('bad-env', { PORT: '0', ...env });
      const exit = await proc.exited;
      expect(exit.code).to.equal(78);
      expect(proc.output()).to.match(/switchboard: invalid configuration/);
      expect(proc.output()).to.match(expected);
    });
  }

  it('gives up with a clear message when no Hazelcast member answers', async () => {
    const deadPort = await freePort();
    const proc = runMain('no-hazelcast', {
      PORT: '0',
      CLUSTER_MODE: 'hazelcast',
      HAZELCAST_MEMBERS: `127.0.0.1:${deadPort}`,
      HAZELCAST_CONNECT_TIMEOUT_MS: '2000',
      STORE: 'mongodb',
      MONGO_URL: `mongodb://127.0.0.1:${deadPort}/`,
    });
    const exit = await proc.exited;
    expect(exit.code).to.equal(1);
    expect(proc.output()).to.match(
      /switchboard: start-up failed: could not reach the Hazelcast cluster .* within 2000 ms/,
    );
  });

  it('gives up with a clear message when the database does not answer', async () => {
    const deadPort = await freePort();
    const proc = runMain('no-mongo', {
      PORT: '0',
      STORE: 'mongodb',
      MONGO_URL: `mongodb://127.0.0.1:${deadPort}/`,
    });
    const exit = await proc.exited;
    expect(exit.code).to.equal(1);
    expect(proc.output()).to.match(/switchboard: start-up failed: .*(mongo|store|database)/i);
  });
});
