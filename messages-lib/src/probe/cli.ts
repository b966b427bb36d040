/// <reference types="node" />
/**
 * `switchboard-probe` (see docs/probe.md): `node messages-lib/dist/probe/cli.js --url …`.
 * The first Ctrl-C stops the run and still prints the report; a second one exits at once.
 */
import { runProbeCli } from './cli-main.js';

const controller = new AbortController();
process.on('SIGINT', () => {
  if (controller.signal.aborted) process.exit(130);
  controller.abort();
});
process.on('SIGTERM', () => controller.abort());
// SIGUSR2 marks a moment (e.g. "the database is back"): the report says how long the backlog
// sent before it took to drain.
const marks = new EventTarget();
process.on('SIGUSR2', () => marks.dispatchEvent(new Event('mark')));

// The token secret may come from the environment (a Kubernetes Secret), not the command line.
const argv = process.argv.slice(2);
const envSecret = process.env.SWITCHBOARD_PROBE_TOKEN_SECRET;
if (envSecret && !argv.some((a) => a === '--token-secret' || a.startsWith('--token-secret='))) {
  argv.push('--token-secret', envSecret);
}

const code = await runProbeCli(argv, {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
  signal: controller.signal,
  marks,
}).catch((err: unknown) => {
  process.stderr.write(
    `switchboard-probe: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return 1;
});
process.exitCode = code;
// Every client is closed by now; a straggling handle must not keep the verdict from the caller.
setTimeout(() => process.exit(code), 2_000).unref();
