/**
 * Offline Kubernetes manifest tools for tests, built or installed once into the shared cache:
 *
 * - kubeconform v0.7.0 and kustomize v5.7.1 from the Go module proxy (`buildGoBinary`);
 * - kube-score v1.20.0 from the Go module proxy, as the linter: kube-linter
 *   (golang.stackrox.io/kube-linter) is not served by the module proxy this project can reach;
 * - the Kubernetes JSON schemas that PyPI `kubernetes-validate` 1.37.0 ships, installed with
 *   `pip install --no-deps --target <cacheDir>/pypi/kubernetes-validate-1.37.0`, for kubeconform.
 *   They reference `/api/_definitions.json` under an https `$id`, which kubernetes-validate
 *   resolves itself; a copy with file-relative refs and no `$id` goes to
 *   `<cacheDir>/kube-schemas/v<version>-strict/`, which kubeconform reads offline (the pip
 *   install is then deleted).
 *
 * CLI:
 *   npx tsx tests/infra/kube-tools.ts build
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, cacheDir, ensureDir } from './cache.js';
import { buildGoBinary } from './go-build.js';
import { isEntryPoint, removeOnExit, startProcess } from './proc.js';

export const KUBECONFORM_VERSION = 'v0.7.0';
export const KUSTOMIZE_VERSION = 'v5.7.1';
export const KUBE_SCORE_VERSION = 'v1.20.0';
export const KUBERNETES_VALIDATE_VERSION = '1.37.0';
/** The Kubernetes version the manifests are validated against (schemas from kubernetes-validate). */
export const KUBERNETES_VERSION = '1.33.0';

const PIP_TIMEOUT_MS = 5 * 60_000;

let buildCache: { dir: string; forget: () => void } | undefined;

/**
 * One Go build cache for the three tools, which share most of their packages: with one cache, a
 * build of the three took 69 s instead of 130 s (2 cores, module cache already filled). It is
 * private to this process, so no other build can lose it midway, and deleted once the tools are
 * built (at exit at the latest): the cache directory keeps only the binaries and the module cache.
 */
function kubeToolsBuildCache(): string {
  if (buildCache === undefined) {
    const dir = mkdtempSync(join(ensureDir(join(cacheDir, 'go')), '.build-cache-kube-tools-'));
    buildCache = { dir, forget: removeOnExit(dir) };
  }
  return buildCache.dir;
}

async function dropBuildCache(): Promise<void> {
  const cache = buildCache;
  buildCache = undefined;
  if (cache === undefined) return;
  await rm(cache.dir, { recursive: true, force: true });
  cache.forget();
}

function goInstall(what: string, module: string, version: string, command: string): () => Promise<string> {
  let promise: Promise<string> | undefined;
  return () =>
    (promise ??= buildGoBinary({
      what,
      binaryName: `${command}-${version.slice(1)}`,
      args: () => ['install', '-trimpath', '-ldflags=-s -w', `${module}@${version}`],
      output: (dir) => join(dir, command),
      env: (dir) => ({ GOBIN: dir, GOCACHE: kubeToolsBuildCache() }),
    }).catch((err: unknown) => {
      promise = undefined;
      throw err;
    }));
}

export const ensureKubeconform = goInstall(
  'kubeconform',
  'github.com/yannh/kubeconform/cmd/kubeconform',
  KUBECONFORM_VERSION,
  'kubeconform',
);
export const ensureKustomize = goInstall(
  'kustomize',
  'sigs.k8s.io/kustomize/kustomize/v5',
  KUSTOMIZE_VERSION,
  'kustomize',
);
export const ensureKubeScore = goInstall(
  'kube-score',
  'github.com/zegl/kube-score/cmd/kube-score',
  KUBE_SCORE_VERSION,
  'kube-score',
);

function schemaRoot(base: string): string {
  return join(base, 'kubernetes_validate', 'kubernetes-json-schema');
}

let schemasPromise: Promise<string> | undefined;

/**
 * Directory of the strict schemas for {@link KUBERNETES_VERSION} as kubeconform reads them, one
 * file per kind (`deployment-apps-v1.json`), installing kubernetes-validate with pip the first time.
 */
export function ensureKubeSchemas(): Promise<string> {
  schemasPromise ??= (
    existsSync(join(localizedDir(), '.complete'))
      ? Promise.resolve(localizedDir())
      : installSchemas().then(localizeSchemas)
  ).catch((err: unknown) => {
    schemasPromise = undefined;
    throw err;
  });
  return schemasPromise;
}

function localizedDir(): string {
  return join(cacheDir, 'kube-schemas', `v${KUBERNETES_VERSION}-strict`);
}

function pipTarget(): string {
  return join(cacheDir, 'pypi', `kubernetes-validate-${KUBERNETES_VALIDATE_VERSION}`);
}

async function localizeSchemas(source: string): Promise<string> {
  const root = ensureDir(join(cacheDir, 'kube-schemas'));
  const dir = localizedDir();
  const done = (): boolean => existsSync(join(dir, '.complete'));
  if (done()) return dir;
  const release = await acquireLock(`${dir}.lock`, done, 120_000, 90_000);
  if (!release) return dir;
  const tmp = mkdtempSync(join(root, '.localize-'));
  try {
    for (const name of await readdir(source)) {
      if (!name.endsWith('.json')) continue;
      const text = (await readFile(join(source, name), 'utf8')).replaceAll(
        '"/api/_definitions.json#',
        '"_definitions.json#',
      );
      const schema = JSON.parse(text) as Record<string, unknown>;
      delete schema.$id;
      await writeFile(join(tmp, name), JSON.stringify(schema));
    }
    await writeFile(join(tmp, '.complete'), `kubernetes-validate ${KUBERNETES_VALIDATE_VERSION}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    // The pip install (~110 MB: every Kubernetes version's schemas) has served its purpose: the
    // localized copy is what kubeconform reads, and its `.complete` keeps pip from running again.
    await rm(pipTarget(), { recursive: true, force: true });
    return dir;
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await release();
  }
}

async function installSchemas(): Promise<string> {
  const pypi = ensureDir(join(cacheDir, 'pypi'));
  const target = pipTarget();
  const dir = join(schemaRoot(target), `v${KUBERNETES_VERSION}-local-strict`);
  const done = (): boolean => existsSync(join(dir, 'deployment-apps-v1.json'));
  if (done()) return dir;
  const release = await acquireLock(`${target}.lock`, done, PIP_TIMEOUT_MS + 60_000, PIP_TIMEOUT_MS + 30_000);
  if (!release) return dir;
  const tmp = mkdtempSync(join(pypi, '.install-'));
  try {
    if (done()) return dir;
    const args = [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--no-deps',
      '--target',
      tmp,
      `kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}`,
    ];
    const python = process.env.PYTHON ?? 'python3';
    const pip = startProcess('pip-kubernetes-validate', python, args);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      pip.exited,
      new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), PIP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (result === 'timeout') await pip.stop(5000);
    const installed = join(schemaRoot(tmp), `v${KUBERNETES_VERSION}-local-strict`, 'deployment-apps-v1.json');
    if (result === 'timeout' || result.code !== 0 || !existsSync(installed)) {
      throw new Error(
        `could not install kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} with pip ` +
          `(${python} ${args.join(' ')}; is PyPI reachable?):\n${pip.output().slice(-3000)}`,
      );
    }
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
    return dir;
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await release();
  }
}

/** Everything the manifest tests need, provisioned concurrently. */
export async function ensureKubeTools(): Promise<{
  kubeconform: string;
  kustomize: string;
  kubeScore: string;
  schemas: string;
}> {
  // Go builds one after another: two at once on 2 cores only make both slower.
  const schemas = ensureKubeSchemas();
  try {
    const kubeconform = await ensureKubeconform();
    const kustomize = await ensureKustomize();
    const kubeScore = await ensureKubeScore();
    return { kubeconform, kustomize, kubeScore, schemas: await schemas };
  } finally {
    await dropBuildCache();
  }
}

if (isEntryPoint(import.meta.url)) {
  const [cmd] = process.argv.slice(2);
  if (cmd === 'build') {
    const t0 = Date.now();
    ensureKubeTools().then(
      (tools) => console.log(JSON.stringify({ ...tools, ms: Date.now() - t0 })),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  } else {
    console.error('usage: tsx tests/infra/kube-tools.ts build');
    process.exitCode = 2;
  }
}
