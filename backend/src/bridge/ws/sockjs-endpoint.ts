import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import sockjs from 'sockjs';
import { BridgeSession, type BridgeTransport, CloseCode } from './bridge-session.js';
import { errFrame } from './frames.js';
import { authenticate, type BridgeEndpointOptions, originAllowed, runSession } from './ws-endpoint.js';

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
  });
  // `middleware` exists in sockjs 0.3 but is missing from its type definitions.
  const handler = (server as unknown as { middleware(o: { prefix: string }): SockJsHandler }).middleware({
    prefix: PREFIX,
  });

  server.on('connection', (conn) => {
    if (!conn) return; // sockjs emits null for a connection that closed during its handshake
    void (async () => {
      const transport: BridgeTransport = {
        send: (text) => void conn.write(text),
        // SockJS queues in its own session; its transports do not expose a byte count.
        bufferedAmount: () => 0,
        close: (code, reason) => void conn.close(String(code), reason),
        extensions: false,
      };
      if (!opts.accepting()) {
        conn.write(errFrame('rejected', 'node is draining'));
        conn.close(String(CloseCode.TRY_AGAIN_LATER), 'draining');
        return;
      }
      const early: string[] = [];
      const collect = (text: string): void => void early.push(text);
      conn.on('data', collect);
      const token = new URLSearchParams(conn.url.split('?')[1] ?? '').get('token') ?? undefined;
      const principal = await authenticate(opts.verifier, token, (frame, reason) => {
        conn.write(frame);
        conn.close(String(CloseCode.POLICY), reason);
      });
      conn.removeListener('data', collect);
      if (principal === null) return;
      const session = new BridgeSession(opts.bus, transport, opts.options, principal, conn.remoteAddress);
      const run = runSession(session, opts.sessions, principal, transport);
      for (const text of early) run.onFrame(text);
      conn.on('data', (text: string) => run.onFrame(text));
      conn.on('close', () => run.onClose());
    })();
  });

  // SockJS answers plain HTTP (info, xhr transports) and upgrades on its paths; everything else,
  // the raw WebSocket path included, goes on to Fastify's own listeners.
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
          if (handler(req, resOrSocket, head) === true) return;
        }
        for (const listener of others) listener.call(http, req, resOrSocket, head);
      });
    }
  });
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
