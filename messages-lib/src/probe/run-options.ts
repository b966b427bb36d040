import type { ChatClientOptions } from '../client.js';
import type { ProbeOptions } from './options.js';
import type { ProbeTick } from './report.js';

export interface RunProbeOptions extends ProbeOptions {
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** Aborting stops sending and settling; the report is still made (aborted, not ok). */
  signal?: AbortSignal;
  /** How often a progress line is logged. Default 2 000 ms. */
  progressEveryMs?: number;
  /** Passed to every ChatClient (e.g. faster heartbeats); default: the library's defaults. */
  clientOptions?: Partial<Omit<ChatClientOptions, 'url' | 'user' | 'token'>>;
  /** Called with every progress line's figures, including the interval's latency and loop delay. */
  onTick?: (tick: ProbeTick) => void;
  /** Run id (default: random); workers of one run share it. */
  runId?: string;
  /**
   * Only rooms r with r % count === index, and their clients (`--workers`: one slice per worker;
   * `rate` is then the slice's share). Default: everything.
   */
  slice?: { index: number; count: number };
  /** Awaited once every client joined, before sending (workers start sending together). */
  beforeSending?: () => Promise<void>;
  /**
   * A `mark` event dispatched here marks that moment (the CLI: SIGUSR2); the report's `mark` then
   * says how long the messages sent before it took to be acked and delivered to every member.
   */
  marks?: EventTarget;
  /**
   * A room's settled messages are checked against its stored history during the run once this
   * many wait, then forgotten (memory stays flat on long runs). Default 256; tests lower it.
   */
  storeCheckAt?: number;
}
