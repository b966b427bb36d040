/// <reference types="node" />
/**
 * One `--workers` thread: runs its slice of the probe (see workers.ts) and posts the raw result.
 * Messages from the parent: `go` (start sending), `abort`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type RunProbeOptions, runProbeRaw } from './run.js';

export interface WorkerInput {
  options: Omit<RunProbeOptions, 'log' | 'signal' | 'onTick' | 'beforeSending'>;
}

export type WorkerMessage =
  | { type: 'log'; line: string }
  | { type: 'connected' }
  | { type: 'done'; result: ReturnType<typeof serializable> }
  | { type: 'error'; error: string };

const port = parentPort!;
const input = workerData as WorkerInput;
const controller = new AbortController();
const marks = new EventTarget();
let go!: () => void;
const started = new Promise<void>((resolve) => (go = resolve));
port.on('message', (m: { type: string }) => {
  if (m.type === 'go') go();
  if (m.type === 'mark') marks.dispatchEvent(new Event('mark'));
  if (m.type === 'abort') {
    controller.abort();
    go();
  }
});

function serializable(r: Awaited<ReturnType<typeof runProbeRaw>>) {
  return {
    report: r.report,
    latency: r.latency.toJSON(),
    ackLatency: r.ackLatency.toJSON(),
    rejoin: r.rejoin.toJSON(),
    gaps: r.gaps,
  };
}

try {
  const result = await runProbeRaw({
    ...input.options,
    log: (line) => port.postMessage({ type: 'log', line } satisfies WorkerMessage),
    signal: controller.signal,
    marks,
    beforeSending: async () => {
      port.postMessage({ type: 'connected' } satisfies WorkerMessage);
      await started;
    },
  });
  port.postMessage({ type: 'done', result: serializable(result) } satisfies WorkerMessage);
} catch (err) {
  port.postMessage({
    type: 'error',
    error: err instanceof Error ? err.message : String(err),
  } satisfies WorkerMessage);
}
port.close();
