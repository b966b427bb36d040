/**
 * Container images for the local Kubernetes, made without a registry or a container engine:
 * a Debian bookworm root filesystem (debootstrap, cached), plus the program, packed as a
 * docker-save tarball (one layer, a config, manifest.json) that `ctr -n k8s.io images import`
 * loads. Names are those the manifests use, so `imagePullPolicy: IfNotPresent` never pulls.
 *
 * - backend  `docker.io/library/switchboard:dev`: the Dockerfile's own steps (../../k8s/
 *   dockerfile-runner.ts) on top of the rootfs and this machine's Node.js; rebuilt when the
 *   working tree changes (its tree hash is in the cache key).
 * - Hazelcast `docker.io/hazelcast/hazelcast:5.6.0`: rootfs + openjdk-17-jre-headless + the jar
 *   tests/infra/hazelcast.ts fetches; configured by the same HZ_* variables as the real image.
 * - FerretDB  `switchboard.local/ferretdb:1.24`: the test FerretDB binary of tests/infra/ferretdb
 *   (it listens on loopback only, so socat in the same image publishes it on the pod's port).
 * - pause    `registry.k8s.io/pause:3.10`: the static pause program, nothing else.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock, cacheDir, ensureDir } from '../cache.js';
import { ensureDebianPackages } from '../debian.js';
import { ensureFerretDbBinary } from '../ferretdb.js';
import { ensureHazelcastJar, HAZELCAST_VERSION, JDK17_FLAGS } from '../hazelcast.js';
import { dockerignore, runDockerfile } from '../../k8s/dockerfile-runner.js';
import { startProcess } from '../proc.js';
import type { KubeBinaries } from './binaries.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MIRROR = 'http://deb.debian.org/debian';
const DEBOOTSTRAP_TIMEOUT_MS = 10 * 60_000;

export const IMAGES = {
  backend: 'docker.io/library/switchboard:dev',
  hazelcast: `docker.io/hazelcast/hazelcast:${HAZELCAST_VERSION}`,
  ferretdb: 'switchboard.local/ferretdb:1.24',
  pause: 'registry.k8s.io/pause:3.10',
} as const;

interface ImageConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object>;
}

async function run(name: string, cmd: string, args: string[], timeoutMs: number): Promise<void> {
  const proc = startProcess(name, cmd, args, {});
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await proc.exited.finally(() => clearTimeout(timer));
  if (code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${proc.output().slice(-3000)}`,
    );
  }
}

/** Runs `fill(tmpDir)` once per machine and renames the result to `path` (a cross-process lock). */
async function cachedPath(
  path: string,
  timeoutMs: number,
  fill: (tmp: string) => Promise<void>,
): Promise<string> {
  if (existsSync(path)) return path;
  const release = await acquireLock(`${path}.lock`, () => existsSync(path), timeoutMs, timeoutMs);
  if (!release) return path;
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    if (existsSync(path)) return path;
    await rm(tmp, { recursive: true, force: true });
    await fill(tmp);
    renameSync(tmp, path);
    return path;
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await release();
  }
}

/** A bookworm minbase root filesystem with `include` packages (their dependencies resolved). */
async function rootfs(name: string, include: string[]): Promise<string> {
  await ensureDebianPackages(['debootstrap']);
  return cachedPath(
    join(ensureDir(join(cacheDir, 'kube', 'rootfs')), name),
    DEBOOTSTRAP_TIMEOUT_MS + 60_000,
    (tmp) =>
      run(
        `debootstrap-${name}`,
        'debootstrap',
        [
          '--variant=minbase',
          ...(include.length ? [`--include=${include.join(',')}`] : []),
          'bookworm',
          tmp,
          MIRROR,
        ],
        DEBOOTSTRAP_TIMEOUT_MS,
      ).then(() => {
        // No package cache or lists in the images.
        execFileSync('sh', ['-c', `rm -rf ${tmp}/var/cache/apt/archives/*.deb ${tmp}/var/lib/apt/lists/*`]);
      }),
  );
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

/**
 * Writes a docker-save tarball of one layer made of `dirs` (later ones over earlier ones).
 * Files keep their modes; owners are root.
 */
async function packImage(tarball: string, name: string, dirs: string[], config: ImageConfig): Promise<void> {
  const work = mkdtempSync(`${tarball}.work-`);
  try {
    const layer = join(work, 'layer.tar');
    const args = ['--numeric-owner', '--owner=0', '--group=0', '-cf', layer];
    for (const d of dirs) args.push('-C', d, '.');
    await run(`tar-${name}`, 'tar', args, 5 * 60_000);
    const diffId = `sha256:${await sha256File(layer)}`;
    const configJson = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-01T00:00:00Z',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...config },
      rootfs: { type: 'layers', diff_ids: [diffId] },
    });
    const configName = `${createHash('sha256').update(configJson).digest('hex')}.json`;
    writeFileSync(join(work, configName), configJson);
    writeFileSync(
      join(work, 'manifest.json'),
      JSON.stringify([{ Config: configName, RepoTags: [name], Layers: ['layer.tar'] }]),
    );
    await run(
      `tar-${name}-image`,
      'tar',
      ['-cf', tarball, '-C', work, 'manifest.json', configName, 'layer.tar'],
      5 * 60_000,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function imagesDir(): string {
  return ensureDir(join(cacheDir, 'kube', 'images'));
}

/**
 * Hash of the image's build context as git sees the working tree (tracked and untracked, not
 * ignored files), minus .dockerignore: a change to the tests or docs does not rebuild the image.
 */
function contextHash(): string {
  const index = join(mkdtempSync(join(cacheDir, 'kube', '.index-')), 'index');
  try {
    const gitIndex = execFileSync('git', ['rev-parse', '--git-path', 'index'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    const from = gitIndex.startsWith('/') ? gitIndex : join(ROOT, gitIndex);
    if (existsSync(from)) copyFileSync(from, index);
    const env = { ...process.env, GIT_INDEX_FILE: index };
    execFileSync('git', ['add', '-A', '.'], { cwd: ROOT, env, stdio: 'ignore' });
    const tree = execFileSync('git', ['write-tree'], { cwd: ROOT, env, encoding: 'utf8' }).trim();
    const ignored = dockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n'));
    const entries = execFileSync('git', ['ls-tree', '-r', tree], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    })
      .split('\n')
      .filter((l) => l && !ignored(l.slice(l.indexOf('\t') + 1)));
    return createHash('sha256').update(entries.join('\n')).digest('hex').slice(0, 16);
  } finally {
    execFileSync('rm', ['-rf', join(index, '..')]);
  }
}

async function backendImage(log: (l: string) => void): Promise<string> {
  const base = await rootfs('bookworm-minbase', []);
  const tarball = join(imagesDir(), `switchboard-dev-${contextHash()}.tar`);
  return cachedPath(tarball, 20 * 60_000, async (tmp) => {
    for (const old of readdirSync(imagesDir()).filter((f) => /^switchboard-dev-[0-9a-f]+\.tar$/.test(f))) {
      await rm(join(imagesDir(), old), { force: true });
    }
    const work = mkdtempSync(join(cacheDir, 'kube', '.backend-'));
    try {
      const stages = await runDockerfile({
        dockerfile: join(ROOT, 'Dockerfile'),
        context: ROOT,
        work,
        runTimeoutMs: 10 * 60_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
        log,
      });
      const image = stages[stages.length - 1]!;
      // The base image's node: this machine's binary (its libraries are in every bookworm rootfs).
      const extra = join(work, 'node-bin');
      mkdirSync(join(extra, 'usr', 'bin'), { recursive: true });
      copyFileSync(process.execPath, join(extra, 'usr', 'bin', 'node'));
      execFileSync('chmod', ['0755', join(extra, 'usr', 'bin', 'node')]);
      await packImage(tmp, IMAGES.backend, [base, extra, image.root], {
        Env: [
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          ...Object.entries(image.env).map(([k, v]) => `${k}=${v}`),
        ],
        ...(image.cmd ? { Cmd: image.cmd } : {}),
        WorkingDir: image.workdir,
        ...(image.user ? { User: image.user } : {}),
        ExposedPorts: Object.fromEntries(image.exposed.map((p) => [`${p}/tcp`, {}])),
      });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}

async function hazelcastImage(): Promise<string> {
  const base = await rootfs('bookworm-jre17', ['openjdk-17-jre-headless']);
  const jar = await ensureHazelcastJar();
  return cachedPath(join(imagesDir(), `hazelcast-${HAZELCAST_VERSION}.tar`), 10 * 60_000, async (tmp) => {
    const extra = mkdtempSync(`${tmp}.extra-`);
    try {
      mkdirSync(join(extra, 'opt', 'hazelcast'), { recursive: true });
      copyFileSync(jar, join(extra, 'opt', 'hazelcast', 'hazelcast.jar'));
      await packImage(tmp, IMAGES.hazelcast, [base, extra], {
        // JAVA_OPTS from the manifest, as the real image's start script reads it; HZ_* variables
        // override the default configuration in Hazelcast itself.
        Cmd: [
          'sh',
          '-c',
          `exec java $JAVA_OPTS ${JDK17_FLAGS.join(' ')} -cp /opt/hazelcast/hazelcast.jar com.hazelcast.core.server.HazelcastMemberStarter`,
        ],
        WorkingDir: '/opt/hazelcast',
        ExposedPorts: { '5701/tcp': {} },
      });
    } finally {
      await rm(extra, { recursive: true, force: true });
    }
  });
}

async function ferretdbImage(): Promise<string> {
  const base = await rootfs('bookworm-socat', ['socat']);
  const bin = await ensureFerretDbBinary();
  const name = bin.split('/').pop()!;
  return cachedPath(join(imagesDir(), `${name}.tar`), 10 * 60_000, async (tmp) => {
    const extra = mkdtempSync(`${tmp}.extra-`);
    try {
      mkdirSync(join(extra, 'usr', 'local', 'bin'), { recursive: true });
      copyFileSync(bin, join(extra, 'usr', 'local', 'bin', 'ferretdb'));
      execFileSync('chmod', ['0755', join(extra, 'usr', 'local', 'bin', 'ferretdb')]);
      await packImage(tmp, IMAGES.ferretdb, [base, extra], { Cmd: ['/usr/local/bin/ferretdb'] });
    } finally {
      await rm(extra, { recursive: true, force: true });
    }
  });
}

async function pauseImage(bins: KubeBinaries): Promise<string> {
  return cachedPath(join(imagesDir(), `pause-${statSync(bins.pause).size}.tar`), 60_000, async (tmp) => {
    const extra = mkdtempSync(`${tmp}.extra-`);
    try {
      copyFileSync(bins.pause, join(extra, 'pause'));
      execFileSync('chmod', ['0755', join(extra, 'pause')]);
      await packImage(tmp, IMAGES.pause, [extra], { Entrypoint: ['/pause'] });
    } finally {
      await rm(extra, { recursive: true, force: true });
    }
  });
}

type Log = (l: string) => void;

async function timed(log: Log, what: string, f: () => Promise<string>): Promise<string> {
  const t0 = Date.now();
  const r = await f();
  log(`image ${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return r;
}

/** Tarballs of the application's images (FerretDB, Hazelcast, backend), building what is missing or out of date. */
export async function ensureAppImages(log: Log = () => undefined): Promise<string[]> {
  return [
    await timed(log, 'ferretdb', ferretdbImage),
    await timed(log, 'hazelcast', hazelcastImage),
    await timed(log, 'backend', () => backendImage(log)),
  ];
}

/** Tarballs of every image the local cluster runs. */
export async function ensureImages(bins: KubeBinaries, log: Log = () => undefined): Promise<string[]> {
  return [await timed(log, 'pause', () => pauseImage(bins)), ...(await ensureAppImages(log))];
}
