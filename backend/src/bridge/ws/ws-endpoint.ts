import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../../auth/principal.js';
import type { TokenVerifier } from '../../auth/tokens.js';
import type { EventBus } from '../../eventbus/types.js';
import { atTokenExpiry, verifyToken } from '../core/handshake.js';
import type { BridgeLogger, BridgeOptions } from '../core/options.js';
import { BridgeSession, type BridgeTransport, CloseCode } from './bridge-session.js';
import { errFrame } from './frames.js';
import type { OutboundFrame } from './outbound-frame.js';

export interface BridgeEndpointOptions {
  bus: EventBus;
  options: BridgeOptions;
  /** With a verifier, every socket needs a valid token (`?token=`). */
  verifier?: TokenVerifier;
  /** Browser origins allowed besides the server's own; `*` allows any. */
  allowedOrigins: string[];
  /** Frames above this close the socket with 1009 (the soft limit in `options` answers an error). */
  hardMaxFrameBytes: number;
  sessions: Set<BridgeSession>;
  /** Checked for every new socket: a draining node takes no new connections. */
  accepting: () => boolean;
}

/**
 * Accepts a browser origin that is listed, or the server's own when the client reached it by IP
 * address or `localhost`; non-browsers send none. A page on a host *name* that matches the Host
 * header is not enough: with DNS rebinding, a hostile page's name can point at this server, and
 * its requests carry that same name as Host. Names the chat is served under go in ALLOWED_ORIGINS.
 */
export function originAllowed(
  headers: { origin?: string | undefined; host?: string | undefined },
  allowed: string[],
): boolean {
  const origin = headers.origin;
  if (!origin || allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    const url = new URL(origin);
    if (url.host !== headers.host) return false;
    const name = url.hostname.replace(/^\[|\]$/g, '');
    return name === 'localhost' || isIP(name) !== 0;
  } catch {
    return false;
  }
}

/** A connection's slot in the per-address cap; false (and the socket refused) when there is none. */
export function takeConnectionSlot(opts: BridgeEndpointOptions, address: string | undefined): boolean {
  return opts.options.addressLimits?.openConnection(address) ?? true;
}

export function tooManyConnections(opts: BridgeEndpointOptions): string {
  const max = opts.options.addressLimits?.config.maxConnectionsPerAddress;
  return errFrame('too_many_connections', `at most ${max} connections per client address`);
}

/**
 * Authenticates a new socket; on failure sends the error frame and closes with 1008.
 * Resolves the principal (undefined in open mode), or null when the socket was refused.
 */
export async function authenticate(
  verifier: TokenVerifier | undefined,
  token: string | undefined,
  refuse: (frame: string, reason: string) => void,
): Promise<Principal | undefined | null> {
  if (!verifier) return undefined;
  const handshake = await verifyToken(verifier, token);
  if ('principal' in handshake) return handshake.principal;
  refuse(errFrame(handshake.refused, handshake.reason), handshake.reason);
  return null;
}

/** Runs a session over any transport: frames are handled one at a time, in arrival order. */
export function runSession(
  session: BridgeSession,
  sessions: Set<BridgeSession>,
  principal: Principal | undefined,
  transport: BridgeTransport,
  log: BridgeLogger,
): { onFrame(text: string): void; onClose(): void } {
  // Frames handed to the chain and not yet handled (the open counts as one): a ping that arrives
  // when there are none is answered without it, in arrival order all the same.
  let queued = 1;
  const done = (): void => void queued--;
  let chain = session
    .open()
    .then((ok) => {
      if (ok) sessions.add(session);
    })
    .finally(done);
  const cancelExpiry = atTokenExpiry(principal, () => transport.close(CloseCode.POLICY, 'token expired'));
  return {
    onFrame(text) {
      if (queued === 0 && session.pingNow(text)) return;
      queued++;
      chain = chain
        .then(() => session.onFrame(text))
        .catch((err: unknown) => {
          // A frame that broke its handler gets an answer, never silence.
          transport.send(errFrame('invalid_frame', err instanceof Error ? err.message : String(err)));
        })
        .then(done);
    },
    onClose() {
      cancelExpiry();
      sessions.delete(session);
      chain = chain
        .then(() => session.close())
        // What is left to fail here is the open (frames answer their own failures).
        .catch((err: unknown) => log.warn({ err: String(err) }, 'bridge: a session failed'));
    },
  };
}

/**
 * Writes prepared frames straight to the TCP socket under one cork: one syscall for all of them,
 * and the frame bytes built once per message for every socket. Safe only while ws itself adds
 * nothing per frame: no permessage-deflate negotiated (the endpoint never enables it) and the
 * socket open; otherwise each frame goes through `ws.send`.
 */
function writeFrames(
  socket: WebSocket,
  raw: Socket | undefined,
  first: OutboundFrame,
  more: readonly OutboundFrame[] | undefined,
): boolean {
  if (socket.readyState !== WebSocket.OPEN) return true;
  if (!raw) {
    socket.send(first.text);
    if (more) for (const f of more) socket.send(f.text);
    return socket.bufferedAmount === 0;
  }
  if (!more) return raw.write(first.wire);
  raw.cork();
  let ok = raw.write(first.wire);
  for (const f of more) ok = raw.write(f.wire);
  raw.uncork();
  return ok;
}

/**
 * The TCP socket under a WebSocket when frames may be written to it directly (no extension
 * negotiated), else undefined. Looked up once per connection: `extensions` is a getter that
 * joins the negotiated names on every call.
 */
function rawSocketOf(socket: WebSocket): Socket | undefined {
  if (socket.extensions !== '') return undefined;
  return (socket as unknown as { _socket?: Socket })._socket;
}

const RAW_PATH = '/eventbus/websocket';

/**
 * The raw WebSocket endpoint of the Vert.x bridge: `/eventbus/websocket`. The upgrade is taken
 * from the HTTP server directly rather than through a Fastify route: a routed upgrade keeps its
 * request and reply objects (and Node's IncomingMessage and ServerResponse) alive for the life of
 * the socket, about 3 KB per idle connection. Only a few strings of the request are kept here.
 */
export async function wsBridgeEndpoint(app: FastifyInstance, opts: BridgeEndpointOptions): Promise<void> {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.hardMaxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const open = new Set<WebSocket>();

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== RAW_PATH) {
      // Another listener (SockJS's) may take this path; with none, nobody would answer.
      if (app.server.listenerCount('upgrade') > 1) return;
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const token = url.searchParams.get('token') ?? undefined;
    const originOk = originAllowed(req.headers, opts.allowedOrigins);
    const remoteAddress = req.socket.remoteAddress;
    wss.handleUpgrade(req, socket, head, (ws) => {
      // Taken once the upgrade succeeded: a handshake ws refuses never calls back to free it.
      const slot = takeConnectionSlot(opts, remoteAddress);
      open.add(ws);
      ws.once('close', () => {
        open.delete(ws);
        if (slot) opts.options.addressLimits?.closeConnection(remoteAddress);
      });
      if (!slot) {
        ws.on('error', () => ws.terminate());
        ws.send(tooManyConnections(opts));
        ws.close(CloseCode.TRY_AGAIN_LATER, 'too many connections');
        return;
      }
      void accept(ws, token, originOk, remoteAddress).catch((err: unknown) => {
        // A session that could not be set up: the client reconnects; the node must not stop.
        opts.options.log.warn({ err: String(err), remoteAddress }, 'bridge: could not open a session');
        ws.terminate();
      });
    });
  };

  const accept = async (
    socket: WebSocket,
    token: string | undefined,
    originOk: boolean,
    remoteAddress: string | undefined,
  ): Promise<void> => {
    socket.on('error', () => socket.terminate());
    const refuse = (frame: string, code: number, reason: string): void => {
      socket.send(frame);
      socket.close(code, reason);
    };
    // 1012, not 1013: the other nodes are fine, so the client should go there at once, not back off.
    if (!opts.accepting())
      return refuse(errFrame('rejected', 'node is draining'), CloseCode.SERVICE_RESTART, 'draining');
    if (!originOk)
      return refuse(errFrame('access_denied', 'origin not allowed'), CloseCode.POLICY, 'origin not allowed');
    // Frames that arrive while the token is checked are kept, in order.
    const early: string[] = [];
    const collect = (data: Buffer): void => void early.push(data.toString());
    socket.on('message', collect);
    const principal = await authenticate(opts.verifier, token, (frame, reason) =>
      refuse(frame, CloseCode.POLICY, reason),
    );
    socket.off('message', collect);
    if (principal === null) return;

    const raw = rawSocketOf(socket);
    const transport: BridgeTransport = {
      send: (text) => socket.send(text),
      sendFrames: (first, more) => writeFrames(socket, raw, first, more),
      bufferedAmount: () => socket.bufferedAmount,
      close: (code, reason) => socket.close(code, reason),
      extensions: true,
    };
    const session = new BridgeSession(opts.bus, transport, opts.options, principal, remoteAddress);
    const run = runSession(session, opts.sessions, principal, transport, opts.options.log);
    for (const text of early) run.onFrame(text);
    socket.on('message', (data: Buffer) => run.onFrame(data.toString()));
    socket.on('close', () => run.onClose());
  };

  // Added when the server is ready, before the SockJS endpoint wraps the upgrade listeners
  // (it hands on every upgrade that is not its own).
  app.addHook('onReady', async () => {
    app.server.on('upgrade', onUpgrade);
  });
  app.addHook('onClose', async () => {
    app.server.off('upgrade', onUpgrade);
    for (const ws of open) ws.terminate();
  });
}
