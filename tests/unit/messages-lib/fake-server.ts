import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Chat, CONTROL_ADDRESS, ROOM_PATTERN, type StoredMessage } from '@switchboard/protocol';
import { WebSocket, WebSocketServer } from 'ws';
import { ChatClient, type ChatClientOptions } from '../../../messages-lib/src/index.js';

/**
 * An in-process stand-in for the Switchboard bridge + chat service, just enough for messages-lib:
 * Vert.x bridge frames on /eventbus/websocket (send with replyAddress, register, unregister,
 * ping/pong, `__sb.control` hello), and chat.join / chat.send / chat.history / chat.leave with seqs
 * in memory. Tests steer it: store without publishing, publish in any order, fail or swallow
 * requests, drop or close sockets, go silent.
 */

export type { StoredMessage } from '@switchboard/protocol';

export interface Frame {
  type: string;
  address?: string;
  body?: Record<string, unknown>;
  replyAddress?: string;
  [k: string]: unknown;
}

export interface Request {
  socket: FakeSocket;
  address: string;
  body: Record<string, unknown>;
  replyAddress: string;
}

/** What to do with a request instead of (or around) handling it. */
export type Action =
  | {
      kind: 'fail';
      failureType: 'TIMEOUT' | 'NO_HANDLERS' | 'RECIPIENT_FAILURE' | 'ERROR';
      code: number;
      message?: string;
    }
  | { kind: 'ignore' } // never answer
  | { kind: 'refuse'; body: string } // the bridge refuses the frame: `{type:"err", body, refused?}`
  | { kind: 'terminate-after' }; // handle it (store, publish), then drop the socket before replying

export interface FakeSocket {
  ws: WebSocket;
  session: string;
  registered: Set<string>;
  token: string | undefined;
}

interface RoomState {
  messages: StoredMessage[];
  byClientMsgId: Map<string, StoredMessage>;
  /** user → holder (socket session + resume token) */
  presence: Map<string, { session: string; resumeToken: string }>;
  nextSeq: number;
}

export class FakeChatServer {
  readonly sockets = new Set<FakeSocket>();
  /** Every frame received, in order. */
  readonly received: { socket: FakeSocket; frame: Frame }[] = [];
  /** Every request handled (after intercept), in order. */
  readonly requests: Request[] = [];
  /** Every socket that connected, in order (refused ones included). */
  readonly connections: FakeSocket[] = [];
  private readonly rooms = new Map<string, RoomState>();
  /** Decides per request; undefined = handle normally. */
  intercept: ((req: Request) => Action | undefined) | undefined;
  /** Publish messages stored by chat.send (default true). */
  autoPublish = true;
  /** Answer pings (default true). */
  pongs = true;
  /** Ignore every frame and send nothing (a dead link that TCP has not noticed). */
  silent = false;
  /** Send the hello control frame on connect. */
  hello = true;
  /** With a token, sockets without it get `err auth_error` and close 1008. */
  token: string | undefined;
  joinLatest = 50;
  joinMax = 500;
  /** The store's epoch, sent in join replies and live messages when set (see docs/chat.md, Epoch). */
  epoch: string | undefined;
  /** Rooms a token does not grant: register and every chat request are refused with `err access_denied`. */
  readonly deniedRooms = new Set<string>();
  /** Sockets refused with this close code (e.g. 1013) while set. */
  refuseWith: number | undefined;
  /**
   * Refusals name the refused frame by its address and replyAddress in `refused`, as the bridge's
   * raw endpoint does (default true); false: as a server that names nothing (Vert.x, an older
   * Switchboard).
   */
  namesRefusedFrames = true;

  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeChatServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/eventbus/websocket' });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    const { port } = wss.address() as AddressInfo;
    const server = new FakeChatServer(wss, `http://127.0.0.1:${port}`);
    wss.on('connection', (ws, req) => server.onConnection(ws, req.url ?? ''));
    return server;
  }

  // --- steering -------------------------------------------------------------------------

  /** Stores a message as the chat service would, without publishing it (publish with `publish`). */
  store(room: string, text: string, user = 'someone', clientMsgId: string = randomUUID()): StoredMessage {
    const r = this.room(room);
    const m: StoredMessage = {
      room,
      seq: r.nextSeq++,
      id: randomUUID(),
      clientMsgId,
      user,
      text,
      ts: Date.now(),
    };
    r.messages.push(m);
    r.byClientMsgId.set(clientMsgId, m);
    return m;
  }

  /** Skips a seq (a failed send's reservation): history then shows a hole there. */
  skipSeq(room: string): void {
    this.room(room).nextSeq++;
  }

  /** Publishes a stored message on chat.room.<room> to every socket registered there. */
  publish(m: StoredMessage): void {
    this.publishRaw(Chat.room(m.room), this.epoch !== undefined ? { ...m, epoch: this.epoch } : m);
  }

  /** A store reset: every room's messages gone, seqs start again at 1, and a new epoch. */
  resetStore(epoch: string): void {
    for (const r of this.rooms.values()) {
      r.messages.length = 0;
      r.byClientMsgId.clear();
      r.nextSeq = 1;
    }
    this.epoch = epoch;
  }

  publishRaw(address: string, body: unknown): void {
    for (const s of this.sockets)
      if (s.registered.has(address)) this.write(s, { type: 'rec', address, body });
  }

  /** Removes a stored message (a store that loses what it acked). */
  forget(room: string, seq: number): void {
    const list = this.room(room).messages;
    const i = list.findIndex((m) => m.seq === seq);
    if (i >= 0) list.splice(i, 1);
  }

  messages(room: string): StoredMessage[] {
    return [...this.room(room).messages];
  }

  presence(room: string): string[] {
    return [...this.room(room).presence.keys()];
  }

  /** Requests to an address (optionally only those matching), in order. */
  requestsTo(address: string): Request[] {
    return this.requests.filter((r) => r.address === address);
  }

  sendControl(body: unknown): void {
    for (const s of this.sockets) this.write(s, { type: 'rec', address: CONTROL_ADDRESS, body });
  }

  /** Drops every socket without a closing handshake (a crashed node). */
  terminateAll(): void {
    for (const s of this.sockets) s.ws.terminate();
  }

  closeAll(code: number, reason = ''): void {
    for (const s of this.sockets) s.ws.close(code, reason);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // --- protocol ---------------------------------------------------------------------------

  private onConnection(ws: WebSocket, url: string): void {
    const token = new URL(url, 'http://x').searchParams.get('token') ?? undefined;
    const socket: FakeSocket = { ws, session: randomUUID(), registered: new Set(), token };
    this.connections.push(socket);
    if (this.refuseWith !== undefined) {
      ws.send(JSON.stringify({ type: 'err', body: 'rejected', message: 'node is draining' }));
      ws.close(this.refuseWith, 'try again later');
      return;
    }
    if (this.token !== undefined && token !== this.token) {
      ws.send(
        JSON.stringify({ type: 'err', body: token ? 'auth_error' : 'not_logged_in', message: 'bad token' }),
      );
      ws.close(1008, 'bad token');
      return;
    }
    this.sockets.add(socket);
    ws.on('close', () => {
      this.sockets.delete(socket);
      for (const r of this.rooms.values()) {
        for (const [user, holder] of r.presence)
          if (holder.session === socket.session) r.presence.delete(user);
      }
    });
    ws.on('error', () => {});
    ws.on('message', (data) => this.onFrame(socket, String(data)));
    if (this.hello) {
      this.write(socket, {
        type: 'rec',
        address: CONTROL_ADDRESS,
        body: { kind: 'hello', session: socket.session, node: 'fake-node' },
      });
    }
  }

  private onFrame(socket: FakeSocket, text: string): void {
    if (this.silent) return;
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      this.write(socket, { type: 'err', body: 'invalid_json' });
      return;
    }
    this.received.push({ socket, frame });
    switch (frame.type) {
      case 'ping':
        if (this.pongs) this.write(socket, { type: 'pong' });
        return;
      case 'register':
        if (this.denied(frame.address!)) {
          this.refuse(socket, frame, 'access_denied');
          return;
        }
        socket.registered.add(frame.address!);
        return;
      case 'unregister':
        socket.registered.delete(frame.address!);
        return;
      case 'send':
        if (!frame.replyAddress || frame.replyAddress.length > 36) {
          this.refuse(socket, frame, 'invalid_reply_address');
          return;
        }
        if (frame.address?.startsWith('chat.') && this.deniedRooms.has(String(frame.body?.room))) {
          this.refuse(socket, frame, 'access_denied');
          return;
        }
        this.onRequest({
          socket,
          address: frame.address!,
          body: (frame.body ?? {}) as Record<string, unknown>,
          replyAddress: frame.replyAddress,
        });
        return;
      default:
        this.refuse(socket, frame, 'invalid_type');
    }
  }

  private refuse(socket: FakeSocket, frame: Frame, body: string): void {
    const refused = {
      ...(typeof frame.address === 'string' ? { address: frame.address } : {}),
      ...(typeof frame.replyAddress === 'string' ? { replyAddress: frame.replyAddress } : {}),
    };
    const named = this.namesRefusedFrames && Object.keys(refused).length > 0;
    this.write(socket, { type: 'err', body, ...(named ? { refused } : {}) });
  }

  private onRequest(req: Request): void {
    const action = this.intercept?.(req);
    if (action?.kind === 'ignore') return;
    if (action?.kind === 'refuse') {
      this.refuse(
        req.socket,
        { type: 'send', address: req.address, replyAddress: req.replyAddress },
        action.body,
      );
      return;
    }
    if (action?.kind === 'fail') {
      this.fail(req, action.failureType, action.code, action.message ?? 'injected failure');
      return;
    }
    this.requests.push(req);
    let reply: unknown;
    try {
      reply = this.handle(req);
    } catch (err) {
      const e = err as { code?: number; message: string };
      this.fail(req, 'RECIPIENT_FAILURE', e.code ?? 500, e.message);
      return;
    }
    if (action?.kind === 'terminate-after') {
      req.socket.ws.terminate();
      return;
    }
    this.write(req.socket, { type: 'rec', address: req.replyAddress, body: reply });
  }

  private handle(req: Request): unknown {
    const b = req.body;
    const roomName = b.room;
    if (typeof roomName !== 'string' || !ROOM_PATTERN.test(roomName)) throw failure(400, 'room: invalid');
    const r = this.room(roomName);
    switch (req.address) {
      case Chat.join: {
        const user = b.user as string;
        const held = r.presence.get(user);
        const resumeToken =
          typeof b.resumeToken === 'string' ? b.resumeToken : randomUUID().replaceAll('-', '');
        if (held && held.session !== req.socket.session && held.resumeToken !== resumeToken) {
          throw failure(409, `user: the name "${user}" is taken in room "${roomName}"`);
        }
        r.presence.set(user, { session: req.socket.session, resumeToken });
        const lastSeq = r.messages.at(-1)?.seq ?? 0;
        let messages: StoredMessage[];
        let truncated = false;
        if (typeof b.since === 'number') {
          messages = r.messages.filter((m) => m.seq > (b.since as number));
          truncated = messages.length > this.joinMax;
          messages = messages.slice(0, this.joinMax);
        } else {
          messages = this.joinLatest > 0 ? r.messages.slice(-this.joinLatest) : [];
        }
        setImmediate(() =>
          this.publishRaw(Chat.presence(roomName), { room: roomName, users: [...r.presence.keys()] }),
        );
        return {
          room: roomName,
          lastSeq,
          messages,
          truncated,
          resumeToken,
          ...(this.epoch !== undefined ? { epoch: this.epoch } : {}),
        };
      }
      case Chat.send: {
        const clientMsgId = b.clientMsgId as string;
        const dup = r.byClientMsgId.get(clientMsgId);
        if (dup) return { seq: dup.seq, id: dup.id, ts: dup.ts };
        if (typeof b.text === 'string' && b.text.length > 4000)
          throw failure(400, 'text: at most 4000 characters');
        const m = this.store(roomName, (b.text as string | undefined) ?? '', b.user as string, clientMsgId);
        if (b.text === undefined) delete m.text;
        if (b.file) {
          const id = (b.file as { id: string }).id;
          m.file = { id, name: `name-of-${id}`, size: 3, contentType: 'image/png' };
        }
        if (this.autoPublish) this.publish(m);
        return { seq: m.seq, id: m.id, ts: m.ts };
      }
      case Chat.history: {
        const limit = typeof b.limit === 'number' ? b.limit : 100;
        let list = r.messages;
        if (typeof b.afterSeq === 'number') {
          list = list.filter((m) => m.seq > (b.afterSeq as number)).slice(0, limit);
        } else if (typeof b.beforeSeq === 'number') {
          list = list.filter((m) => m.seq < (b.beforeSeq as number)).slice(-limit);
        } else list = list.slice(0, limit);
        return { messages: list };
      }
      case Chat.leave: {
        const left = r.presence.delete(b.user as string);
        return { left };
      }
      default:
        throw failure(404, `no handler for ${req.address}`);
    }
  }

  private denied(address: string): boolean {
    const m = /^chat\.(?:room|presence)\.(.+)$/.exec(address);
    return m !== null && this.deniedRooms.has(m[1]!);
  }

  private fail(req: Request, failureType: string, failureCode: number, message: string): void {
    this.write(req.socket, { type: 'err', address: req.replyAddress, failureType, failureCode, message });
  }

  private write(socket: FakeSocket, frame: object): void {
    if (this.silent) return;
    if (socket.ws.readyState === socket.ws.OPEN) socket.ws.send(JSON.stringify(frame));
  }

  private room(name: string): RoomState {
    let r = this.rooms.get(name);
    if (!r)
      this.rooms.set(name, (r = { messages: [], byClientMsgId: new Map(), presence: new Map(), nextSeq: 1 }));
    return r;
  }
}

function failure(code: number, message: string): Error & { code: number } {
  return Object.assign(new Error(message), { code });
}

/** Polls until `cond` holds; fails after `timeoutMs` (every wait in these tests is bounded). */
export async function waitFor(cond: () => boolean, label: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${label}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves after `ms` (for letting something *not* happen; never used as a timing assertion). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Fast settings for tests; every client made here is closed by `closeAll`. */
export class Harness {
  readonly clients: ChatClient[] = [];
  readonly servers: FakeChatServer[] = [];

  async server(): Promise<FakeChatServer> {
    const s = await FakeChatServer.start();
    this.servers.push(s);
    return s;
  }

  client(server: FakeChatServer, options: Partial<ChatClientOptions> = {}): ChatClient {
    const client = new ChatClient({
      url: server.url,
      user: 'ana',
      WebSocket,
      reconnect: { baseMs: 10, maxMs: 40, drainJitterMs: 10 },
      heartbeatMs: 2_000,
      requestTimeoutMs: 1_000,
      gapFillMs: 30,
      ...options,
    });
    this.clients.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.close()));
    await Promise.all(this.servers.splice(0).map((s) => s.close()));
  }
}
