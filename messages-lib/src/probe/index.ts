/**
 * switchboard-probe as a library, for Node (fault tests, benchmarks). Not part of the browser
 * entry point: import it from `@switchboard/messages-lib/probe`.
 */
export { runProbe, runProbeRaw, type ProbeReport, type ProbeTick, type RunProbeOptions } from './run.js';
export { runProbeWorkers } from './workers.js';
export { runCanary, type CanaryReport } from './canary.js';
export { canaryMetricsText } from './canary-metrics.js';
export {
  DEFAULTS,
  LIMITS,
  parseProbeArgs,
  type CliOptions,
  type ProbeOptions,
  UsageError,
  USAGE,
} from './options.js';
export {
  ProbeLedger,
  ViolationLog,
  type ClientState,
  type LedgerOptions,
  type RoomHistory,
  type StoredMessage,
} from './ledger.js';
export { LatencyHistogram } from './histogram.js';
export { ChunkedArray, ChunkedBits, ChunkedNumbers } from './chunked.js';
export { verify, type StoreCheck, type Verification, type Violation, type ViolationKind } from './verify.js';
export { longestGap, percentiles, type Percentiles } from './stats.js';
export { signProbeToken } from './token.js';
export { runProbeCli, type CliIo } from './cli-main.js';
