import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyContext, runDockerfile, type StageResult } from '../k8s/dockerfile-runner.js';
import { freePort, removeOnExit, startProcess, waitFor } from '../infra/proc.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The image, built the way the Dockerfile says but without a container engine: its RUN steps
 * (full install and build, then a production-only install) in stage directories, its COPY steps
 * from a context filtered by .dockerignore, then its exact CMD in the runtime stage's WORKDIR.
 */
describe('Dockerfile (build steps and CMD, run outside a container)', function () {
  this.timeout(20 * 60_000);
  let work: string;
  let cancelCleanup: () => void;
  let stages: StageResult[];

  before(async function () {
    this.timeout(20 * 60_000);
    work = mkdtempSync(join(tmpdir(), 'sb-docker-'));
    cancelCleanup = removeOnExit(work);
    copyContext(repo, join(work, 'context'));
    stages = await runDockerfile({
      dockerfile: join(repo, 'Dockerfile'),
      context: join(work, 'context'),
      work: join(work, 'stages'),
      runTimeoutMs: 10 * 60_000,
      // The machine's npm cache stands in for the registry layer cache a Docker build would have.
      env: { npm_config_update_notifier: 'false' },
    });
  });

  after(async function () {
    if (work) await rm(work, { recursive: true, force: true });
    cancelCleanup?.();
  });

  it('has a build stage and a smaller runtime stage that runs as a non-root user', () => {
    expect(stages.map((s) => s.name)).to.deep.equal(['build', 'runtime']);
    const runtime = stages.at(-1)!;
    expect(runtime.user, 'USER').to.match(/^[1-9]\d*(:[1-9]\d*)?$/);
    expect(runtime.env.NODE_ENV).to.equal('production');
    expect(runtime.exposed).to.include.members([8080, 50051, 5800]);
    const app = join(runtime.root, runtime.workdir);
    // Production install only: no compiler, bundler or test runner in the image.
    for (const dev of ['typescript', 'vite', 'mocha', 'tsx', 'eslint']) {
      expect(existsSync(join(app, 'node_modules', dev)), `node_modules/${dev}`).to.equal(false);
    }
    for (const dep of ['fastify', 'hazelcast-client', 'mongodb', 'prom-client']) {
      expect(existsSync(join(app, 'node_modules', dep)), `node_modules/${dep}`).to.equal(true);
    }
    expect(existsSync(join(app, 'front', 'dist', 'index.html')), 'front/dist/index.html').to.equal(true);
    expect(existsSync(join(app, 'src')), 'no sources').to.equal(false);
  });

  it("starts with the image's CMD and serves /ready, /metrics and the web chat", async () => {
    const runtime = stages.at(-1)!;
    expect(runtime.cmd, 'CMD').to.be.an('array').that.is.not.empty;
    const [cmd, ...args] = runtime.cmd!;
    const port = await freePort();
    const adminPort = await freePort();
    const dataDir = join(work, 'data');
    const proc = startProcess('image-cmd', cmd === 'node' ? process.execPath : cmd!, args, {
      cwd: join(runtime.root, runtime.workdir),
      env: {
        ...runtime.env,
        HOST: '127.0.0.1',
        PORT: String(port),
        GRPC_PORT: '0',
        ADMIN_PORT: String(adminPort),
        DATA_DIR: dataDir,
        LOG_LEVEL: 'info',
      },
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      const ready = await waitFor(
        '/ready to answer 200',
        async () => {
          if (!proc.isRunning()) throw new Error(`the CMD exited:\n${proc.output().slice(-3000)}`);
          const res = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(2_000) }).catch(
            () => undefined,
          );
          return res?.status === 200 ? ((await res.json()) as { status: string }) : undefined;
        },
        60_000,
        200,
      );
      expect(ready.status).to.equal('ready');
      // Metrics on the admin port only: the public one does not describe the node.
      const metrics = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
      expect(metrics.status).to.equal(200);
      expect(await metrics.text()).to.contain('switchboard_chat_messages_in_total');
      expect((await fetch(`${base}/metrics`)).status).to.equal(404);
      const page = await fetch(`${base}/`);
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-type')).to.match(/text\/html/);
      const html = await page.text();
      const built = readFileSync(join(runtime.root, runtime.workdir, 'front', 'dist', 'index.html'), 'utf8');
      expect(html).to.equal(built);
      // SIGTERM (what Kubernetes sends) ends the node cleanly.
      proc.kill('SIGTERM');
      const exit = await Promise.race([
        proc.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000)),
      ]);
      expect(exit, proc.output().slice(-2000)).to.deep.equal({ code: 0, signal: null });
    } finally {
      await proc.stop(5_000);
    }
  });
});
