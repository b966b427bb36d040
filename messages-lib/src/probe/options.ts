/// <reference types="node" />
import { parseArgs } from 'node:util';
import { isRoomName } from '@switchboard/protocol';

/** What a probe run does; `runProbe` takes it, the CLI builds it from flags. */
export interface ProbeOptions {
  /** Server base URLs (http(s) or ws(s)); client i starts on urls[i % n] and moves on to the next on every reconnection. */
  urls: string[];
  clients: number;
  rooms: number;
  /** Messages per second, over all clients together. */
  rate: number;
  /** Seconds of sending. */
  durationS: number;
  /** Longest wait, in seconds, after sending stops, for deliveries and outboxes to complete. */
  settleS: number;
  /** Rooms are `<roomPrefix>-0` … `<roomPrefix>-<rooms-1>`; default a fresh `probe-<run>`. */
  roomPrefix?: string;
  /** Signs an HS256 JWT per user (servers with AUTH_TOKEN_SECRET). */
  tokenSecret?: string;
  /** Longest wait, in seconds, for every client to connect and join. */
  connectTimeoutS: number;
}

export interface CanaryOptions {
  /** An acked message not delivered intact to every member of its room within this is lost. */
  lossAfterS: number;
  /** Prometheus text on http://<metricsHost>:<metricsPort>/metrics (0: any free port). */
  metricsPort: number;
  metricsHost: string;
}

export interface CliOptions extends ProbeOptions {
  jsonOnly: boolean;
  /** Run until SIGTERM, judging online and serving metrics (`--canary`). */
  canary?: CanaryOptions;
  /** Spread the clients over this many worker threads (`--workers`); absent: one. */
  workers?: number;
}

export const DEFAULTS = {
  clients: 20,
  rooms: 2,
  rate: 20,
  durationS: 10,
  settleS: 30,
  connectTimeoutS: 30,
} as const;

/** `--canary`'s defaults: a few messages per second over a few rooms, for days. */
export const CANARY_DEFAULTS = {
  clients: 6,
  rooms: 3,
  rate: 2,
  lossAfterS: 30,
  metricsPort: 9464,
  metricsHost: '0.0.0.0',
} as const;

/** Upper bounds that keep one probe process sane; beyond them, run several probes. */
export const LIMITS = {
  clients: 10_000,
  rooms: 1_000,
  rate: 10_000,
  durationS: 86_400,
  settleS: 3_600,
  connectTimeoutS: 600,
  lossAfterS: 3_600,
  workers: 64,
} as const;

/** A bad command line: the CLI prints the message and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `usage: switchboard-probe --url <url>[,<url>…] [options]

Runs N chat clients in M rooms through any Switchboard URL (a node, a load balancer), sends at a
fixed total rate, then checks what every client received against what the server acknowledged.
Ends with one JSON line on stdout. Exit 0 when nothing acked was lost, duplicated or reordered;
1 otherwise; 2 for bad usage.

  --url <list>           http(s):// or ws(s):// base URL, or a comma-separated list (client i starts
                         on entry i mod n and moves to the next entry on every reconnection) (required)
  --clients <n>          clients, one WebSocket each (default ${DEFAULTS.clients})
  --rooms <n>            rooms; clients are spread evenly over them (default ${DEFAULTS.rooms})
  --rate <per second>    messages per second over all clients (default ${DEFAULTS.rate})
  --duration <seconds>   how long to send (default ${DEFAULTS.durationS})
  --settle <seconds>     longest wait after sending for deliveries and outboxes (default ${DEFAULTS.settleS})
  --connect-timeout <s>  longest wait for every client to connect and join (default ${DEFAULTS.connectTimeoutS})
  --room-prefix <name>   rooms are <name>-0 … <name>-<rooms-1> (default: a fresh probe-<run>)
  --token-secret <s>     sign an HS256 JWT per user (the server's AUTH_TOKEN_SECRET)
  --workers <n>          spread the clients over n worker threads (one merged report) (default 1)
  --json-only            print only the JSON line on stdout (no summary)
  --help                 this text

Canary mode (runs until SIGTERM, then exits 0 after closing its clients):
  --canary               send continuously (defaults: ${CANARY_DEFAULTS.clients} clients, ${CANARY_DEFAULTS.rooms} rooms, ${CANARY_DEFAULTS.rate} msg/s), judge
                         every message online, serve Prometheus metrics; not with --duration/--settle
  --loss-after <s>       an acked message not delivered to every member of its room within this is
                         lost (default ${CANARY_DEFAULTS.lossAfterS})
  --metrics-port <port>  serve /metrics here (default ${CANARY_DEFAULTS.metricsPort}; 0: any free port)
  --metrics-host <addr>  address to listen on (default ${CANARY_DEFAULTS.metricsHost})
`;

/** Parses the CLI's arguments (without node and the script). Throws UsageError naming the flag. */
export function parseProbeArgs(argv: string[]): CliOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        clients: { type: 'string' },
        rooms: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        settle: { type: 'string' },
        'connect-timeout': { type: 'string' },
        'room-prefix': { type: 'string' },
        'token-secret': { type: 'string' },
        'json-only': { type: 'boolean' },
        workers: { type: 'string' },
        canary: { type: 'boolean' },
        'loss-after': { type: 'string' },
        'metrics-port': { type: 'string' },
        'metrics-host': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(describeParseError(err));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.url === undefined) throw new UsageError('--url: required (e.g. --url http://127.0.0.1:8080)');
  const canary = v.canary === true;
  if (canary) {
    if (v.duration !== undefined)
      throw new UsageError('--duration: not with --canary (it runs until SIGTERM)');
    if (v.settle !== undefined)
      throw new UsageError('--settle: not with --canary (it judges each message after --loss-after)');
    if (v.workers !== undefined) throw new UsageError('--workers: not with --canary (a canary is light)');
  } else {
    for (const flag of ['loss-after', 'metrics-port', 'metrics-host'] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag}: only with --canary`);
    }
  }
  const base = canary ? CANARY_DEFAULTS : DEFAULTS;
  const options: CliOptions = {
    urls: parseUrls(v.url),
    clients: integer('--clients', v.clients, base.clients, 1, LIMITS.clients),
    rooms: integer('--rooms', v.rooms, base.rooms, 1, LIMITS.rooms),
    rate: decimal('--rate', v.rate, base.rate, LIMITS.rate, false),
    // A canary has no duration (it runs until SIGTERM): the longest one, so any --rate passes.
    durationS: canary
      ? LIMITS.durationS
      : decimal('--duration', v.duration, DEFAULTS.durationS, LIMITS.durationS, false),
    settleS: decimal('--settle', v.settle, DEFAULTS.settleS, LIMITS.settleS, true),
    connectTimeoutS: decimal(
      '--connect-timeout',
      v['connect-timeout'],
      DEFAULTS.connectTimeoutS,
      LIMITS.connectTimeoutS,
      false,
    ),
    jsonOnly: v['json-only'] === true,
  };
  if (v['room-prefix'] !== undefined) options.roomPrefix = v['room-prefix'];
  if (v['token-secret'] !== undefined) options.tokenSecret = v['token-secret'];
  if (v.workers !== undefined) {
    options.workers = integer('--workers', v.workers, 1, 1, LIMITS.workers);
    if (options.workers > options.rooms) {
      throw new UsageError(`--workers: at most --rooms (${options.rooms}); each worker takes whole rooms`);
    }
  }
  if (canary) {
    const host = v['metrics-host'] ?? CANARY_DEFAULTS.metricsHost;
    if (!/^[A-Za-z0-9.:[\]-]{1,253}$/.test(host)) {
      throw new UsageError(`--metrics-host: an IP address or host name (got ${JSON.stringify(host)})`);
    }
    options.canary = {
      lossAfterS: decimal(
        '--loss-after',
        v['loss-after'],
        CANARY_DEFAULTS.lossAfterS,
        LIMITS.lossAfterS,
        false,
      ),
      metricsPort: integer('--metrics-port', v['metrics-port'], CANARY_DEFAULTS.metricsPort, 0, 65_535),
      metricsHost: host,
    };
  }
  validateProbeOptions(options);
  return options;
}

/** Checks options given to `runProbe` directly (the CLI's flags are checked by `parseProbeArgs`). */
export function validateProbeOptions(o: ProbeOptions): void {
  if (!Array.isArray(o.urls) || o.urls.length === 0) throw new UsageError('--url: at least one URL');
  for (const u of o.urls) checkUrl(u);
  integer('--clients', String(o.clients), 0, 1, LIMITS.clients);
  integer('--rooms', String(o.rooms), 0, 1, LIMITS.rooms);
  if (o.rooms > o.clients) {
    throw new UsageError(`--rooms: at most --clients (${o.clients}), so that every room has a client`);
  }
  decimal('--rate', String(o.rate), 0, LIMITS.rate, false);
  decimal('--duration', String(o.durationS), 0, LIMITS.durationS, false);
  decimal('--settle', String(o.settleS), 0, LIMITS.settleS, true);
  decimal('--connect-timeout', String(o.connectTimeoutS), 0, LIMITS.connectTimeoutS, false);
  if (Math.floor(o.rate * o.durationS) < 1) {
    throw new UsageError('--rate × --duration: must make at least one message');
  }
  if (o.roomPrefix !== undefined) {
    const last = `${o.roomPrefix}-${o.rooms - 1}`;
    if (o.roomPrefix.length === 0 || !isRoomName(last)) {
      throw new UsageError(
        `--room-prefix: letters, digits, "_" or "-", and <prefix>-${o.rooms - 1} at most 64 characters (got ${JSON.stringify(o.roomPrefix)})`,
      );
    }
  }
  if (o.tokenSecret !== undefined && o.tokenSecret.length < 32) {
    throw new UsageError(
      '--token-secret: at least 32 characters (as the server requires of AUTH_TOKEN_SECRET)',
    );
  }
}

function parseUrls(raw: string): string[] {
  const urls = raw
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  if (urls.length === 0) throw new UsageError('--url: at least one URL');
  for (const u of urls) checkUrl(u);
  return urls;
}

function checkUrl(u: string): void {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new UsageError(`--url: not a URL: ${JSON.stringify(u)}`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) {
    throw new UsageError(`--url: expected http(s):// or ws(s):// (got ${JSON.stringify(u)})`);
  }
}

function integer(flag: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${flag}: expected a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return n;
}

function decimal(
  flag: string,
  raw: string | undefined,
  fallback: number,
  max: number,
  zeroOk: boolean,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || (!zeroOk && n === 0) || n > max) {
    throw new UsageError(
      `${flag}: expected a number ${zeroOk ? '≥ 0' : '> 0'} and at most ${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return n;
}

function describeParseError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  // parseArgs' messages name the flag ("Unknown option '--foo'", "Option '--rate <value>' argument missing").
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `${message.split('. ')[0]} (see --help)`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `${message} (every option is a --flag)`;
  return message;
}
