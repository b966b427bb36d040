import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import sockjs from 'sockjs';
import { BridgeSession, type BridgeTransport, CloseCode } from './bridge-session.js';
import { errFrame } from './frames.js';
import {
  authenticate,
  type BridgeEndpointOptions,
  originAllowed,
  runSession,
  takeConnectionSlot,
  tooManyConnections,
} from './ws-endpoint.js';

const PREFIX = '/eventbus';
const RAW_PATH = `${PREFIX}/websocket`;

type SockJsHandler = (req: IncomingMessage, res: ServerResponse | Duplex, head?: Buffer) => boolean;

function pathOf(url: string | undefined): string {
  return (url ?? '').split('?')[0] ?? '';
}

/** SockJS's own paths under the prefix; the raw WebSocket path stays with ws-endpoint.ts. */
function isSockJsPath(url: string | undefined): boolean {
  const path = pathOf(url);
  return (path === PREFIX || path.startsWith(`${PREFIX}/`)) && path !== RAW_PATH;
}

/**
 * The SockJS endpoint of the Vert.x bridge at `/eventbus`, for the official
 * `@vertx/eventbus-bridge-client.js`. Same sessions, permissions, hooks and auth as the raw
 * endpoint; the token comes in the URL's query (`/eventbus?token=…`).
 */
export async function sockJsBridgeEndpoint(app: FastifyInstance, opts: BridgeEndpointOptions): Promise<void> {
  const server = sockjs.createServer({
    prefix: PREFIX,
    log: () => {},
    // The client pings every 5 s; SockJS's own heartbeat keeps proxies from closing idle streams.
    heartbeat_delay: 25_000,
    disconnect_delay: 5_000,
    // Frames over the hard limit close the socket with 1009, as on the raw endpoint.
    faye_server_options: { maxLength: opts.hardMaxFrameBytes },
  } as sockjs.ServerOptions);
  // `middleware` exists in sockjs 0.3 but is missing from its type definitions.
  const handler = (server as unknown as { middleware(o: { prefix: string }): SockJsHandler }).middleware({
    prefix: PREFIX,
  });

  /** Open sessions by SockJS session id: a POST too large to read closes its session. */
  const bySessionId = new Map<string, (code: number, reason: string) => void>();

  server.on('connection', (conn) => {
    if (!conn) return; // sockjs emits null for a connection that closed during its handshake
    void (async () => {
      // Close codes go out as numbers (`c[4000,"…"]`): sockjs-client reports them as it got them.
      const close = (code: number, reason: string): void =>
        void (conn as unknown as { close(code: number, reason: string): boolean }).close(code, reason);
      const transport: BridgeTransport = {
        send: (text) => void conn.write(text),
        bufferedAmount: () => sockJsBuffered(conn),
        close,
        extensions: false,
      };
      if (!opts.accepting()) {
        conn.write(errFrame('rejected', 'node is draining'));
        close(CloseCode.SERVICE_RESTART, 'draining');
        return;
      }
      const remoteAddress = conn.remoteAddress;
      if (!takeConnectionSlot(opts, remoteAddress)) {
        conn.write(tooManyConnections(opts));
        close(CloseCode.TRY_AGAIN_LATER, 'too many connections');
        return;
      }
      const sessionId = (conn as unknown as { _session?: { session_id?: string } })._session?.session_id;
      if (sessionId) bySessionId.set(sessionId, close);
      conn.on('close', () => {
        opts.options.addressLimits?.closeConnection(remoteAddress);
        if (sessionId) bySessionId.delete(sessionId);
      });
      const early: string[] = [];
      const collect = (text: string): void => void early.push(text);
      conn.on('data', collect);
      const token = new URLSearchParams(conn.url.split('?')[1] ?? '').get('token') ?? undefined;
      const principal = await authenticate(opts.verifier, token, (frame, reason) => {
        conn.write(frame);
        close(CloseCode.POLICY, reason);
      });
      conn.removeListener('data', collect);
      if (principal === null) return;
      const session = new BridgeSession(opts.bus, transport, opts.options, principal, conn.remoteAddress);
      const run = runSession(session, opts.sessions, principal, transport, opts.options.log);
      const onFrame = (text: string): void => {
        // The polling transports hand over whatever a POST held: the hard limit holds here too.
        if (text.length > opts.hardMaxFrameBytes / 4 && Buffer.byteLength(text) > opts.hardMaxFrameBytes) {
          conn.write(
            errFrame('frame_too_large', `frames over ${opts.hardMaxFrameBytes} bytes close the socket`),
          );
          close(CloseCode.TOO_BIG, 'frame too large');
          return;
        }
        run.onFrame(text);
      };
      for (const text of early) onFrame(text);
      conn.on('data', onFrame);
      conn.on('close', () => run.onClose());
    })().catch((err: unknown) => {
      // A session that could not be set up: the client reconnects; the node must not stop.
      opts.options.log.warn(
        { err: String(err), remoteAddress: conn.remoteAddress },
        'bridge: could not open a SockJS session',
      );
      conn.close();
    });
  });

  // SockJS answers plain HTTP (info, xhr transports) and upgrades on its paths; everything else,
  // the raw WebSocket path included, goes on to Fastify's own listeners.
  // Frames over the hard limit must reach onFrame to close their session (1009); the body wraps
  // them in a JSON array of JSON strings, escaping a quote with a backslash each.
  const postLimit = opts.hardMaxFrameBytes * 2 + 1024;
  app.addHook('onReady', async () => {
    const http = app.server;
    for (const event of ['request', 'upgrade'] as const) {
      const others = http.listeners(event).slice() as ((...args: unknown[]) => void)[];
      http.removeAllListeners(event);
      http.on(event, (req: IncomingMessage, resOrSocket: ServerResponse | Duplex, head?: Buffer) => {
        if (isSockJsPath(req.url)) {
          if (!opts.accepting() || !originAllowed(req.headers, opts.allowedOrigins)) {
            refuse(resOrSocket, opts.accepting() ? 403 : 503);
            return;
          }
          // sockjs reads a POST body whole, into one buffer, with no limit of its own.
          if (req.method === 'POST') {
            const tooLarge = (): void => {
              const session = /^\/eventbus\/[^/]+\/([^/]+)\//.exec(pathOf(req.url))?.[1];
              const close = session ? bySessionId.get(session) : undefined;
              close?.(CloseCode.TOO_BIG, 'frame too large');
            };
            if (!boundBody(req, resOrSocket, postLimit, tooLarge)) return;
          }
          if (handler(req, resOrSocket, head) === true) return;
        }
        for (const listener of others) listener.call(http, req, resOrSocket, head);
      });
    }
  });
}

/**
 * What SockJS holds for a client and has not written to the network: frames waiting for the
 * next poll (polling transports), and the bytes in the socket of a streaming one.
 */
function sockJsBuffered(conn: sockjs.Connection): number {
  const session = (
    conn as unknown as {
      _session?: { send_buffer?: string[]; recv?: { thingy?: { writableLength?: number } } | null };
    }
  )._session;
  if (!session) return 0;
  let n = session.recv?.thingy?.writableLength ?? 0;
  for (const frame of session.send_buffer ?? []) n += frame.length;
  return n;
}

/** Refuses (413) a POST body larger than `limit`, declared or streamed; true while it is within. */
function boundBody(
  req: IncomingMessage,
  res: ServerResponse | Duplex,
  limit: number,
  onTooLarge: () => void,
): boolean {
  const tooLarge = (): void => {
    onTooLarge();
    if ('writeHead' in res && !res.headersSent) {
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('request body too large');
    }
    req.socket.destroySoon?.();
  };
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    tooLarge();
    return false;
  }
  let seen = 0;
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > limit) {
      req.pause();
      tooLarge();
      req.destroy();
    }
  });
  return true;
}

function refuse(target: ServerResponse | Duplex, status: number): void {
  const text = status === 403 ? 'origin not allowed' : 'node is draining';
  if ('writeHead' in target) {
    target.writeHead(status, { 'content-type': 'text/plain' }).end(text);
  } else {
    target.end(
      `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Service Unavailable'}\r\nConnection: close\r\n\r\n`,
    );
  }
}
