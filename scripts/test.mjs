// The whole test suite: static checks, provisioning of the real components the tests need
// (cached under ~/.cache/switchboard), then unit and integration tests with mocha.
// Ends with one line `tests: N passed, N failed, N skipped`.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => `${root}/node_modules/.bin/${name}`;
const started = Date.now();

function step(title, cmd, args) {
  const t0 = Date.now();
  console.log(`\n== ${title}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    console.error(`\n== ${title}: FAILED (exit ${r.status ?? r.signal})`);
    console.log('tests: 0 passed, 1 failed');
    process.exit(1);
  }
  console.log(`== ${title}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

step('format (prettier --check)', bin('prettier'), ['--check', '.', '--log-level', 'warn']);
step('lint (eslint)', bin('eslint'), ['.']);
step('typecheck (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
step('no folder-level import cycles (backend, messages-lib)', 'sh', [
  '-c',
  'node scripts/folder-cycles.mjs backend/src && node scripts/folder-cycles.mjs messages-lib/src',
]);
step('build protocol, backend and messages-lib (tsc -b)', bin('tsc'), [
  '-b',
  'protocol',
  'backend',
  'messages-lib',
]);
step('build the web chat (front: tsc + vite build)', 'npm', ['run', 'build', '--silent', '-w', 'front']);
step('provision Hazelcast 5.6 jar', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/hazelcast.ts',
  'fetch',
]);
step('provision Vert.x 5.0.7 (Maven) and compile the reference bridge server', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/vertx.ts',
  'fetch',
]);
step('provision FerretDB 1.24 (Go module proxy)', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/ferretdb.ts',
  'build',
]);
step('provision HAProxy, Chromium, Redis (Debian packages)', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/debian.ts',
  'install',
  'haproxy',
  'chromium',
  'redis-server',
]);
step('provision grpcurl 1.9.3 (Go module proxy)', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/grpcurl.ts',
  'build',
]);
step('provision kubeconform, kustomize, kube-score (Go module proxy) and schemas (PyPI)', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/kube-tools.ts',
  'build',
]);

step('provision the local Kubernetes 1.34 (Go module proxy, Debian, images)', process.execPath, [
  '--import',
  'tsx',
  'tests/infra/kube/cluster.ts',
  'provision',
]);

const specs = process.argv.slice(2);
const mochaArgs =
  specs.length > 0
    ? specs
    : [
        'tests/unit/**/*.test.ts',
        'tests/integration/**/*.test.ts',
        'tests/fault/**/*.test.ts',
        'tests/abuse/**/*.test.ts',
        'tests/k8s/**/*.test.ts',
        'tests/k8s-cluster/**/*.test.ts',
        'tests/browser/**/*.test.ts',
      ];
console.log(`\n== mocha ${mochaArgs.join(' ')}`);
const mocha = spawn(bin('mocha'), mochaArgs, {
  cwd: root,
  env: process.env,
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
mocha.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  out += chunk.toString();
  if (out.length > 1_000_000) out = out.slice(-100_000);
});
mocha.on('close', (code) => {
  const count = (word) => Number(out.match(new RegExp(`(\\d+) ${word}`))?.[1] ?? 0);
  const passed = count('passing');
  const failed = count('failing') || (code !== 0 && count('passing') === 0 ? 1 : 0);
  const skipped = count('pending');
  console.log(`\nsuite finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(code === 0 && failed === 0 && passed > 0 ? 0 : 1);
});
