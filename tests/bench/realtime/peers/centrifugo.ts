/**
 * The Centrifugo peer: the configuration the benchmark runs Centrifugo v6.9.1 with (built by
 * tests/infra/centrifugo.ts), the channel a room maps to, and the HS256 connection tokens its
 * clients present. The load generator speaks Centrifugo's JSON client protocol over `ws`
 * (`/connection/websocket`): `connect` with a token, `subscribe` to the room's channel, then
 * `push` frames; several replies may share one WebSocket frame, one JSON object per line. The
 * server pings with `{}` every 25 s and the client answers `{}`.
 */
import { createHmac } from 'node:crypto';

/** The namespace of the benchmark's channels: history and recovery on (see centrifugoConfig). */
export const CENT_NAMESPACE = 'chat';

export const centChannel = (room: string): string => `${CENT_NAMESPACE}:${room}`;

export interface CentrifugoOptions {
  port: number;
  /** HMAC secret of the connection tokens (random per run). */
  secret: string;
  /** Key of the server HTTP API (random per run). */
  apiKey: string;
  /** Redis for several nodes (broker and presence manager); the memory engine without it. */
  redisUrl?: string | undefined;
  /** Node name in logs and the cluster (default: the hostname). */
  nodeName?: string;
}

/**
 * Centrifugo v6 configuration (the v6 layout: `client.*`, `channel.namespaces`, `http_api.*`),
 * as its documentation recommends for production, apart from what a benchmark on 127.0.0.1
 * needs:
 * - clients authenticate with a JWT (HS256 connection token, `client.token.hmac_secret_key`); no
 *   insecure or anonymous mode;
 * - `client.allowed_origins` set to exact origins (browsers' requests are checked; the `ws`
 *   package sends no Origin header, which Centrifugo accepts, as it does for any non-browser
 *   client);
 * - the server HTTP API protected by `http_api.key`;
 * - the bench namespace keeps history (100 messages, 5 min) with recovery forced, so a client
 *   that reconnects gets what it missed, as Switchboard's rooms replay from their log;
 * - client-side publish allowed in that namespace for authenticated clients: the benchmark's
 *   publisher is a client on a WebSocket, as in the Switchboard row (its `chat.send` is acked once
 *   stored); Centrifugo answers a client `publish` once the publication is in the channel's
 *   history and handed to the broker;
 * - the memory engine on one node (its default); with Redis, the Redis engine (broker and
 *   presence manager in Redis: the documented way to run several nodes);
 * - anonymous usage statistics off (no internet here) and the health endpoint on.
 */
export function centrifugoConfig(o: CentrifugoOptions): Record<string, unknown> {
  const redis = o.redisUrl ? { address: [o.redisUrl] } : undefined;
  return {
    http_server: { address: '127.0.0.1', port: o.port },
    log: { level: 'info' },
    ...(o.nodeName ? { node: { name: o.nodeName } } : {}),
    client: {
      token: { hmac_secret_key: o.secret },
      allowed_origins: [`http://127.0.0.1:${o.port}`],
    },
    channel: {
      namespaces: [
        {
          name: CENT_NAMESPACE,
          history_size: 100,
          history_ttl: '300s',
          force_recovery: true,
          allow_subscribe_for_client: true,
          allow_publish_for_client: true,
        },
      ],
    },
    http_api: { key: o.apiKey },
    engine: redis ? { type: 'redis', redis } : { type: 'memory' },
    health: { enabled: true },
    usage_stats: { disabled: true },
  };
}

/** How the load generator speaks to Centrifugo, for the bench output and the results page. */
export const CENT_CLIENT_NOTE =
  "clients: Centrifugo's JSON protocol over the `ws` package, each connection authenticated with its own HS256 JWT " +
  '(no insecure or anonymous mode), subscribed to one channel of the `chat` namespace; the publisher is a client too, ' +
  'publishing on its connection (`allow_publish_for_client`), each publish answered once it is in the channel history';

/** The configuration as printed in the bench output: the two secrets masked. */
export function printableConfig(config: Record<string, unknown>): string {
  return JSON.stringify(config, (key, value: unknown) =>
    key === 'hmac_secret_key' || key === 'key' ? '<random per run>' : value,
  );
}

const b64url = (s: string | Buffer): string => Buffer.from(s).toString('base64url');

/** An HS256 connection token for user `sub`, valid for an hour. */
export function centToken(secret: string, sub: string): string {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
