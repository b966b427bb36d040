import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CHAT_LIMITS, DEFAULT_MAX_FRAME_BYTES } from '@switchboard/protocol';
import { z } from 'zod';

const int = (name: string, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${name}: expected a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name}: expected a whole number from ${min} to ${max}`);

const port = (name: string) => int(name, 0, 65_535);

const hostPort = /^[A-Za-z0-9.-]+:\d{1,5}$/;

const permitted = z
  .strictObject({
    address: z.string().min(1).optional(),
    addressRegex: z
      .string()
      .min(1)
      .refine((r) => {
        try {
          new RegExp(r);
          return true;
        } catch {
          return false;
        }
      }, 'not a valid regular expression')
      .optional(),
    match: z.record(z.string(), z.unknown()).optional(),
    requiredAuthority: z.string().min(1).optional(),
  })
  .refine(
    (p) => p.address !== undefined || p.addressRegex !== undefined,
    'each entry needs address or addressRegex',
  );

const schema = z
  .object({
    HOST: z.string().trim().min(1).default('0.0.0.0'),
    PORT: port('PORT').default(8080),
    // Control and metrics (/prestop, /metrics): a port no Service or Ingress exposes.
    ADMIN_PORT: port('ADMIN_PORT').default(9090),
    ADMIN_HOST: z.string().trim().min(1).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    NODE_ID: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'NODE_ID: expected 1-64 letters, digits, - or _')
      .optional(),
    CLUSTER_MODE: z.enum(['standalone', 'hazelcast']).default('standalone'),
    HAZELCAST_MEMBERS: z
      .string()
      .trim()
      .transform((s) =>
        s
          .split(',')
          .map((m) => m.trim())
          .filter(Boolean),
      )
      .refine(
        (list) => list.every((m) => hostPort.test(m)),
        'HAZELCAST_MEMBERS: expected a comma-separated list of host:port',
      )
      .optional(),
    HAZELCAST_CLUSTER_NAME: z.string().trim().min(1).default('dev'),
    HAZELCAST_CONNECT_TIMEOUT_MS: int('HAZELCAST_CONNECT_TIMEOUT_MS', 1_000, 3_600_000).default(30_000),
    CLUSTER_HOST: z.string().trim().min(1).default('127.0.0.1'),
    CLUSTER_PORT: port('CLUSTER_PORT').default(0),
    CLUSTER_PUBLIC_HOST: z.string().trim().min(1).optional(),
    CLUSTER_LEASE_MS: int('CLUSTER_LEASE_MS', 300, 600_000).default(10_000),
    BUS_REQUEST_TIMEOUT_MS: int('BUS_REQUEST_TIMEOUT_MS', 1, 3_600_000).default(30_000),
    BUS_MAX_BODY_BYTES: int('BUS_MAX_BODY_BYTES', 1_024, 256 * 1024 * 1024).default(8 * 1024 * 1024),
    STORE: z.enum(['embedded', 'mongodb']).default('embedded'),
    DATA_DIR: z.string().trim().min(1).default('.data'),
    MONGO_URL: z
      .string()
      .trim()
      .regex(/^mongodb(\+srv)?:\/\/\S+$/, 'MONGO_URL: expected a mongodb:// or mongodb+srv:// URL')
      .optional(),
    MONGO_DB: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_-]{1,63}$/, 'MONGO_DB: expected 1-63 letters, digits, - or _')
      .default('switchboard'),
    MONGO_SLOW_MS: int('MONGO_SLOW_MS', 0, 3_600_000).default(0),
    MONGO_INSERTS_IN_FLIGHT: int('MONGO_INSERTS_IN_FLIGHT', 1, 64).default(2),
    STORE_TAIL_MESSAGES: int('STORE_TAIL_MESSAGES', 0, 10_000).default(500),
    STORE_TAIL_MB: int('STORE_TAIL_MB', 1, 16_384).default(64),
    STORE_MAX_IN_FLIGHT: int('STORE_MAX_IN_FLIGHT', 1, 100_000).default(1_000),
    STORE_SLOW_MS: int('STORE_SLOW_MS', 100, 600_000).default(2_000),
    STORE_RETRY_PER_SEC: int('STORE_RETRY_PER_SEC', 1, 1_000_000).default(500),
    STORE_BATCHING: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
    FILES_DIR: z.string().trim().min(1).optional(),
    // The built web chat. The default is found from this module (src/ or dist/), not from the cwd.
    FRONT_DIR: z
      .string()
      .trim()
      .min(1)
      .default(fileURLToPath(new URL('../../../front/dist', import.meta.url))),
    FILE_MAX_BYTES: int('FILE_MAX_BYTES', 1, 1024 * 1024 * 1024).default(25 * 1024 * 1024),
    FILE_UPLOADS_PER_MINUTE: int('FILE_UPLOADS_PER_MINUTE', 1, 100_000).default(30),
    FILE_UPLOAD_BYTES_PER_HOUR: int('FILE_UPLOAD_BYTES_PER_HOUR', 1, 1024 * 1024 * 1024 * 1024).default(
      512 * 1024 * 1024,
    ),
    FILE_LINK_TTL_MS: int('FILE_LINK_TTL_MS', 1_000, 86_400_000).default(300_000),
    CHAT_MAX_TEXT: int('CHAT_MAX_TEXT', 1, 100_000).default(DEFAULT_CHAT_LIMITS.maxTextLength),
    CHAT_JOIN_MAX: int('CHAT_JOIN_MAX', 1, 10_000).default(DEFAULT_CHAT_LIMITS.joinMaxMessages),
    CHAT_JOIN_LATEST: int('CHAT_JOIN_LATEST', 0, 10_000).default(DEFAULT_CHAT_LIMITS.joinLatest),
    ROOM_TOP_QUIET_MS: int('ROOM_TOP_QUIET_MS', 0, 600_000).default(1_000),
    AUTH_TOKEN_SECRET: z.string().min(32, 'AUTH_TOKEN_SECRET: at least 32 characters').optional(),
    ALLOWED_ORIGINS: z
      .string()
      .trim()
      .transform((s) =>
        s
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean),
      )
      .refine(
        (list) => list.every((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o)),
        'ALLOWED_ORIGINS: expected * or a comma-separated list of origins like https://chat.example.com',
      )
      .default([]),
    BRIDGE_PERMISSIONS: z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'BRIDGE_PERMISSIONS: not valid JSON' });
          return z.NEVER;
        }
      })
      .pipe(
        z.strictObject(
          {
            inbound: z.array(permitted).default([]),
            outbound: z.array(permitted).default([]),
          },
          'BRIDGE_PERMISSIONS: expected {"inbound": [...], "outbound": [...]} of Vert.x PermittedOptions',
        ),
      )
      .optional(),
    BRIDGE_MAX_FRAME_BYTES: int('BRIDGE_MAX_FRAME_BYTES', 1_024, 16 * 1024 * 1024).default(
      DEFAULT_MAX_FRAME_BYTES,
    ),
    BRIDGE_MAX_HANDLERS: int('BRIDGE_MAX_HANDLERS', 1, 100_000).default(1_000),
    BRIDGE_RATE_PER_SEC: int('BRIDGE_RATE_PER_SEC', 1, 1_000_000).default(200),
    BRIDGE_IDLE_TIMEOUT_MS: int('BRIDGE_IDLE_TIMEOUT_MS', 1_000, 3_600_000).default(10_000),
    BRIDGE_REPLY_TIMEOUT_MS: int('BRIDGE_REPLY_TIMEOUT_MS', 1, 3_600_000).default(30_000),
    BRIDGE_MAX_INFLIGHT: int('BRIDGE_MAX_INFLIGHT', 1, 100_000).default(16),
    BRIDGE_MAX_INFLIGHT_PER_ADDRESS: int('BRIDGE_MAX_INFLIGHT_PER_ADDRESS', 1, 1_000_000).default(256),
    BRIDGE_MAX_CONNECTIONS_PER_ADDRESS: int('BRIDGE_MAX_CONNECTIONS_PER_ADDRESS', 1, 1_000_000).default(
      1_000,
    ),
    GRPC_MAX_STREAMS_PER_CONNECTION: int('GRPC_MAX_STREAMS_PER_CONNECTION', 1, 100_000).default(100),
    BRIDGE_MAX_BUFFERED_BYTES: int('BRIDGE_MAX_BUFFERED_BYTES', 64 * 1024, 1024 * 1024 * 1024).default(
      4 * 1024 * 1024,
    ),
    GRPC_PORT: port('GRPC_PORT').default(50051),
    GRPC_MAX_MESSAGE_BYTES: int('GRPC_MAX_MESSAGE_BYTES', 1_024, 256 * 1024 * 1024).default(4 * 1024 * 1024),
    GRPC_STREAM_MAX_QUEUE: int('GRPC_STREAM_MAX_QUEUE', 1, 1_000_000).default(1_000),
    GRPC_KEEPALIVE_TIME_MS: int('GRPC_KEEPALIVE_TIME_MS', 1_000, 86_400_000).default(60_000),
    GRPC_KEEPALIVE_TIMEOUT_MS: int('GRPC_KEEPALIVE_TIMEOUT_MS', 1_000, 3_600_000).default(20_000),
    GRPC_MAX_CONNECTION_AGE_MS: int('GRPC_MAX_CONNECTION_AGE_MS', 0, 86_400_000).default(300_000),
    GRPC_MAX_CONNECTION_AGE_GRACE_MS: int('GRPC_MAX_CONNECTION_AGE_GRACE_MS', 0, 86_400_000).default(30_000),
    SHUTDOWN_TIMEOUT_MS: int('SHUTDOWN_TIMEOUT_MS', 100, 3_600_000).default(45_000),
    DRAIN_WINDOW_MS: int('DRAIN_WINDOW_MS', 0, 600_000).default(5_000),
    DRAIN_GRPC_GRACE_MS: int('DRAIN_GRPC_GRACE_MS', 0, 600_000).default(10_000),
    PRESTOP_WAIT_MS: int('PRESTOP_WAIT_MS', 0, 600_000).default(5_000),
  })
  .superRefine((c, ctx) => {
    if (c.CLUSTER_MODE === 'hazelcast' && !c.HAZELCAST_MEMBERS?.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['HAZELCAST_MEMBERS'],
        message: 'HAZELCAST_MEMBERS: required when CLUSTER_MODE=hazelcast (e.g. 127.0.0.1:5701)',
      });
    }
    const wildcard = c.CLUSTER_HOST === '0.0.0.0' || c.CLUSTER_HOST === '::';
    if (c.CLUSTER_MODE === 'hazelcast' && wildcard && !c.CLUSTER_PUBLIC_HOST) {
      ctx.addIssue({
        code: 'custom',
        path: ['CLUSTER_PUBLIC_HOST'],
        message:
          'CLUSTER_PUBLIC_HOST: required when CLUSTER_HOST binds every interface; other nodes need an address to dial (e.g. the pod IP)',
      });
    }
    if (c.STORE === 'mongodb' && !c.MONGO_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['MONGO_URL'],
        message: 'MONGO_URL: required when STORE=mongodb (e.g. mongodb://127.0.0.1:27017)',
      });
    }
    if (c.DRAIN_WINDOW_MS + c.DRAIN_GRPC_GRACE_MS >= c.SHUTDOWN_TIMEOUT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['DRAIN_WINDOW_MS'],
        message: `DRAIN_WINDOW_MS: the drain window plus DRAIN_GRPC_GRACE_MS (${c.DRAIN_WINDOW_MS + c.DRAIN_GRPC_GRACE_MS} ms) must be shorter than SHUTDOWN_TIMEOUT_MS (${c.SHUTDOWN_TIMEOUT_MS} ms)`,
      });
    }
    if (
      c.CLUSTER_PUBLIC_HOST &&
      isIP(c.CLUSTER_PUBLIC_HOST) === 0 &&
      !/^[A-Za-z0-9.-]+$/.test(c.CLUSTER_PUBLIC_HOST)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['CLUSTER_PUBLIC_HOST'],
        message: 'CLUSTER_PUBLIC_HOST: expected an IP address or host name',
      });
    }
  });

export type Config = z.output<typeof schema>;

/** Never echoed back in an error: a config error ends up in logs. */
const SECRET_KEYS = new Set(['AUTH_TOKEN_SECRET', 'MONGO_URL']);

/** A configuration error: the message names each variable and what it expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads the configuration from environment variables; empty strings count as unset. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const given = !(key in input)
      ? ''
      : SECRET_KEYS.has(key)
        ? ` (got ${input[key]!.length} characters, not shown)`
        : ` (got ${JSON.stringify(input[key])})`;
    const where = issue.path.length > 1 ? `${issue.path.slice(1).join('.')}: ` : '';
    const text = issue.message.startsWith(`${key}:`) ? issue.message : `${key}: ${where}${issue.message}`;
    return `  ${text}${given}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
