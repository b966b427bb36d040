/**
 * A load-generator process of the real-time benchmark, driven by its parent over IPC (see
 * protocol.ts). It holds subscriber connections (Switchboard's bridge frames over raw `ws`, the raw
 * `ws` peer, or socket.io-client) and records, per step, how many tagged messages arrived and
 * their latency; or it publishes at a fixed rate. The same code drives every server.
 */
import { io, type Socket } from 'socket.io-client';
import { Chat } from '@switchboard/protocol';
import { WebSocket } from 'ws';
import { ChatClient, type Room } from '../../../messages-lib/src/index.js';
import { centChannel, centToken } from './peers/centrifugo.js';
import {
  BUCKETS,
  bucketOf,
  chatBody,
  type Command,
  parseTag,
  type Reply,
  type ServerKind,
  tagOf,
  wallMs,
} from './protocol.js';

interface StepStats {
  received: number;
  hist: Uint32Array;
}

const steps = new Map<number, StepStats>();
const probes: number[] = [];
const closers: (() => void)[] = [];

function stats(step: number): StepStats {
  let s = steps.get(step);
  if (!s) steps.set(step, (s = { received: 0, hist: new Uint32Array(BUCKETS) }));
  return s;
}

function onTagged(conn: number, tag: unknown): void {
  const t = parseTag(tag);
  if (!t) return;
  if (t.step === 0) {
    // Probe: the tag's `i` is the probe id; the connection is known to be subscribed.
    const id = Number(String(tag).split('-')[2]);
    if (id > (probes[conn] ?? -1)) probes[conn] = id;
    return;
  }
  const s = stats(t.step);
  s.received++;
  s.hist[bucketOf(wallMs() - t.sentAt)]!++;
}

const wsUrl = (http: string, path: string): string => http.replace(/^http/, 'ws') + path;

/** A frame of Centrifugo's JSON client protocol (only the fields read here). */
interface CentFrame {
  id?: number;
  error?: { code: number; message: string };
  push?: { channel?: string; pub?: { data?: { clientMsgId?: unknown } } };
}

/**
 * Centrifugo's JSON protocol: one WebSocket frame may carry several replies and pushes, one JSON
 * object per line. The server's ping is an empty object, answered with one.
 */
function centFrames(ws: WebSocket, data: Buffer, each: (f: CentFrame) => void): void {
  for (const line of data.toString().split('\n')) {
    if (line === '') continue;
    if (line === '{}') {
      ws.send('{}');
      continue;
    }
    each(JSON.parse(line) as CentFrame);
  }
}

/** Opens a Centrifugo client connection: resolves once its `connect` (with a token) is answered. */
function centConnect(url: string, secret: string, user: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(url, '/connection/websocket'));
    closers.push(() => ws.terminate());
    ws.on('error', reject);
    ws.once('open', () =>
      ws.send(JSON.stringify({ id: 1, connect: { token: centToken(secret, user), name: 'bench' } })),
    );
    ws.once('message', (data: Buffer) => {
      const f = JSON.parse(data.toString().split('\n')[0]!) as CentFrame;
      if (f.id === 1 && !f.error) resolve(ws);
      else reject(new Error(`centrifugo connect: ${data.toString().slice(0, 200)}`));
    });
  });
}

function openSubscriber(
  kind: ServerKind,
  url: string,
  room: string,
  conn: number,
  ping: boolean,
  secret: string,
): Promise<void> {
  probes[conn] = -1;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection ${conn} did not open in 30 s`)), 30_000);
    if (kind === 'cent') {
      // One user per connection; the subscription is the room's channel (history + recovery on).
      const channel = centChannel(room);
      centConnect(url, secret, `sub-${process.pid}-${conn}`).then((ws) => {
        ws.on('message', (data: Buffer) =>
          centFrames(ws, data, (f) => {
            if (f.push) {
              if (f.push.channel === channel) onTagged(conn, f.push.pub?.data?.clientMsgId);
            } else if (f.id === 2) {
              clearTimeout(timer);
              if (f.error) reject(new Error(`centrifugo subscribe: ${f.error.message}`));
              else resolve();
            }
          }),
        );
        ws.send(JSON.stringify({ id: 2, subscribe: { channel } }));
      }, reject);
      return;
    }
    if (kind === 'sio') {
      const socket: Socket = io(url, { transports: ['websocket'], query: { room }, reconnection: false });
      socket.on('msg', (body: { clientMsgId?: unknown }) => onTagged(conn, body.clientMsgId));
      socket.once('joined', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('connect_error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      closers.push(() => socket.close());
      return;
    }
    const address = Chat.room(room);
    const ws = new WebSocket(wsUrl(url, kind === 'sb' ? '/eventbus/websocket' : '/sub'));
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('open', () => {
      clearTimeout(timer);
      if (kind === 'sb') {
        ws.send(JSON.stringify({ type: 'register', address }));
        if (ping) {
          // The bridge closes sockets that stay silent for BRIDGE_IDLE_TIMEOUT_MS; every 5 s as
          // messages-lib and Vert.x's JS client do.
          const t = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), 5_000);
          t.unref();
        }
      }
      resolve();
    });
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as {
        type?: string;
        address?: string;
        body?: { clientMsgId?: unknown };
      };
      if (kind === 'sb') {
        if (f.type === 'rec' && f.address === address) onTagged(conn, f.body?.clientMsgId);
      } else {
        onTagged(conn, (f as { clientMsgId?: unknown }).clientMsgId);
      }
    });
    closers.push(() => ws.terminate());
  });
}

async function connect(c: Extract<Command, { cmd: 'connect' }>): Promise<Reply> {
  const base = probes.length;
  let failed = 0;
  // Connect in waves: a thousand handshakes at once only measures the accept queue.
  const wave = 100;
  for (let i = 0; i < c.count; i += wave) {
    const batch = Array.from({ length: Math.min(wave, c.count - i) }, (_, j) => {
      const n = base + i + j;
      return openSubscriber(c.kind, c.urls[n % c.urls.length]!, c.room, n, c.ping, c.secret ?? '').catch(
        () => void failed++,
      );
    });
    await Promise.all(batch);
  }
  return { ok: 'connect', connected: c.count - failed, failed };
}

/** Sends `rate` messages per second for `ms`, paced by the clock (catching up after a late timer). */
async function publish(c: Extract<Command, { cmd: 'publish' }>): Promise<Reply> {
  const total = Math.max(1, Math.round((c.rate * c.ms) / 1000));
  let acked = 0;
  let failed = 0;
  let send: (i: number, tag: string) => void;
  let finish: () => void = () => {};
  const allAcked = new Promise<void>((r) => (finish = r));
  const check = (): void => {
    if (acked + failed >= total) finish();
  };
  if (c.kind === 'sio') {
    const socket = io(c.url, { transports: ['websocket'], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    send = (i, tag) => socket.emit('pub', chatBody(c.room, tag, i));
    closers.push(() => socket.close());
  } else if (c.kind === 'cent') {
    // A client publish on the publisher's own connection, answered once the publication is in the
    // channel's history and handed to the broker (ids 2.. ; 1 was the connect).
    const ws = await centConnect(c.url, c.secret ?? '', `pub-${process.pid}`);
    ws.on('message', (data: Buffer) =>
      centFrames(ws, data, (f) => {
        if (f.id === undefined || f.id < 2) return;
        if (f.error) failed++;
        else acked++;
        check();
      }),
    );
    const channel = centChannel(c.room);
    send = (i, tag) =>
      ws.send(JSON.stringify({ id: i + 1, publish: { channel, data: chatBody(c.room, tag, i) } }));
  } else {
    const ws = new WebSocket(wsUrl(c.url, c.kind === 'sb' ? '/eventbus/websocket' : '/pub'));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    closers.push(() => ws.terminate());
    if (c.kind === 'sb') {
      ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString()) as { type?: string; address?: string };
        if (!f.address?.startsWith('r')) return;
        if (f.type === 'rec') acked++;
        else failed++;
        check();
      });
      // The durable path: chat.send is acked only once the store has the message.
      send = (i, tag) =>
        ws.send(
          JSON.stringify({
            type: 'send',
            address: Chat.send,
            replyAddress: `r${i}`,
            body: {
              room: c.room,
              user: 'publisher',
              clientMsgId: tag,
              text: 'The quick brown fox jumps over the lazy dog, then asks how the benchmark is going.',
            },
          }),
        );
    } else {
      send = (i, tag) => ws.send(JSON.stringify(chatBody(c.room, tag, i)));
    }
  }
  const start = wallMs();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((wallMs() - start) / 1000) * c.rate) + 1);
      while (sent < due) {
        sent++;
        send(sent, tagOf(c.step, sent, wallMs()));
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const ms = wallMs() - start;
  if (c.kind === 'sb' || c.kind === 'cent')
    await Promise.race([allAcked, new Promise((r) => setTimeout(r, 15_000))]);
  else acked = sent;
  return { ok: 'publish', sent, acked, failed, ms };
}

/** A member of one room that also sends into it (the many-rooms row). */
interface RoomClient {
  room: string;
  conn: number;
  /** Sends one tagged chat message; `done` is called with its ack (true) or error (false, why). */
  send(seq: number, tag: string, done: (ok: boolean, why?: string) => void): void;
}

const roomClients: RoomClient[] = [];
const CHAT_TEXT = 'The quick brown fox jumps over the lazy dog, then asks how the benchmark is going.';

/**
 * Opens one room client: a member of `room` (it receives every message sent there, its own
 * included) that sends with its system's acknowledged path: Switchboard `chat.send` (a reply once
 * stored), a Centrifugo client `publish` (its reply), a Socket.IO emit with an ack callback. The
 * raw `ws` peer has no ack: a send counts as acked once written.
 */
function openRoomClient(
  kind: ServerKind,
  url: string,
  room: string,
  conn: number,
  secret: string,
): Promise<RoomClient> {
  probes[conn] = -1;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection ${conn} did not open in 30 s`)), 30_000);
    const ready = (send: RoomClient['send']): void => {
      clearTimeout(timer);
      resolve({ room, conn, send });
    };
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    if (kind === 'cent') {
      const channel = centChannel(room);
      const pending = new Map<number, (ok: boolean, why?: string) => void>();
      let nextId = 3;
      centConnect(url, secret, `u-${process.pid}-${conn}`).then((ws) => {
        ws.on('message', (data: Buffer) =>
          centFrames(ws, data, (f) => {
            if (f.push) {
              if (f.push.channel === channel) onTagged(conn, f.push.pub?.data?.clientMsgId);
            } else if (f.id === 2) {
              if (f.error) fail(new Error(`centrifugo subscribe: ${f.error.message}`));
              else
                ready((seq, tag, done) => {
                  const id = nextId++;
                  pending.set(id, done);
                  ws.send(JSON.stringify({ id, publish: { channel, data: chatBody(room, tag, seq) } }));
                });
            } else if (f.id !== undefined) {
              const done = pending.get(f.id);
              pending.delete(f.id);
              done?.(!f.error, f.error && `${f.error.code} ${f.error.message}`);
            }
          }),
        );
        ws.send(JSON.stringify({ id: 2, subscribe: { channel } }));
      }, fail);
      return;
    }
    if (kind === 'sio') {
      const socket: Socket = io(url, { transports: ['websocket'], query: { room }, reconnection: false });
      closers.push(() => socket.close());
      socket.on('msg', (body: { clientMsgId?: unknown }) => onTagged(conn, body.clientMsgId));
      socket.once('joined', () =>
        ready((seq, tag, done) => socket.emit('pub', chatBody(room, tag, seq), () => done(true))),
      );
      socket.once('connect_error', fail);
      return;
    }
    const address = Chat.room(room);
    const ws = new WebSocket(wsUrl(url, kind === 'sb' ? '/eventbus/websocket' : `/room/${room}`));
    closers.push(() => ws.terminate());
    ws.on('error', fail);
    const pending = new Map<string, (ok: boolean, why?: string) => void>();
    let next = 0;
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as {
        type?: string;
        address?: string;
        body?: { clientMsgId?: unknown };
        clientMsgId?: unknown;
        failureCode?: unknown;
        message?: unknown;
      };
      if (kind !== 'sb') return onTagged(conn, f.clientMsgId);
      if (f.address === address) {
        if (f.type === 'rec') onTagged(conn, f.body?.clientMsgId);
        return;
      }
      const done = f.address === undefined ? undefined : pending.get(f.address);
      if (!done) return;
      pending.delete(f.address!);
      done(f.type === 'rec', `${String(f.failureCode)} ${String(f.message)}`.slice(0, 80));
    });
    ws.on('open', () => {
      if (kind !== 'sb')
        return ready((seq, tag, done) => (ws.send(JSON.stringify(chatBody(room, tag, seq))), done(true)));
      ws.send(JSON.stringify({ type: 'register', address }));
      // Pings every 5 s, as messages-lib does (the bridge closes sockets silent for 10 s).
      const t = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), 5_000);
      t.unref();
      const user = `u-${process.pid}-${conn}`;
      ready((_seq, tag, done) => {
        const replyAddress = `r${next++}`;
        pending.set(replyAddress, done);
        ws.send(
          JSON.stringify({
            type: 'send',
            address: Chat.send,
            replyAddress,
            body: { room, user, clientMsgId: tag, text: CHAT_TEXT },
          }),
        );
      });
    });
  });
}

async function roomsConnect(c: Extract<Command, { cmd: 'roomsConnect' }>): Promise<Reply> {
  let failed = 0;
  const total = c.rooms * c.roomSize;
  // Waves of 100 handshakes, as for the fan-out subscribers; a room's members are consecutive.
  for (let i = 0; i < total; i += 100) {
    const batch = Array.from({ length: Math.min(100, total - i) }, (_, j) => {
      const n = i + j;
      const room = `${c.prefix}-${c.firstRoom + Math.floor(n / c.roomSize)}`;
      return openRoomClient(c.kind, c.url, room, probes.length, c.secret ?? '').then(
        (client) => void roomClients.push(client),
        () => void failed++,
      );
    });
    await Promise.all(batch);
  }
  return { ok: 'connect', connected: total - failed, failed };
}

/**
 * Registration is asynchronous on some servers (Switchboard's `register` has no reply): one probe
 * per room, again for rooms not yet complete, until every member has received one.
 */
async function roomsProbe(c: Extract<Command, { cmd: 'roomsProbe' }>): Promise<Reply> {
  const byRoom = new Map<string, RoomClient[]>();
  for (const rc of roomClients) {
    let list = byRoom.get(rc.room);
    if (!list) byRoom.set(rc.room, (list = []));
    list.push(rc);
  }
  const deadline = performance.now() + c.ms;
  let ready = 0;
  for (let id = 1; ; id++) {
    ready = 0;
    for (const members of byRoom.values()) {
      if (members.every((m) => probes[m.conn]! >= 1)) {
        ready += members.length;
        continue;
      }
      members[0]!.send(id, `b-0-${id}-${wallMs().toFixed(3)}`, () => {});
    }
    if (ready === roomClients.length || performance.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return { ok: 'roomsProbe', ready, clients: roomClients.length };
}

/** Deterministic shuffle (a step's send order): consecutive messages go to different rooms. */
function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let x = seed * 2654435761 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `rate` messages a second for `ms`, each from the next client in a shuffled order. */
async function roomsSend(c: Extract<Command, { cmd: 'roomsSend' }>): Promise<Reply> {
  const total = Math.max(1, Math.round((c.rate * c.ms) / 1000));
  const order = shuffled(roomClients, c.step);
  let acked = 0;
  let failed = 0;
  const errors = new Map<string, number>();
  let finish: () => void = () => {};
  const allAcked = new Promise<void>((r) => (finish = r));
  const done = (ok: boolean, why?: string): void => {
    if (ok) acked++;
    else {
      failed++;
      const key = why ?? 'error';
      errors.set(key, (errors.get(key) ?? 0) + 1);
    }
    if (acked + failed >= total) finish();
  };
  const start = wallMs();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((wallMs() - start) / 1000) * c.rate) + 1);
      while (sent < due) {
        sent++;
        order[sent % order.length]!.send(sent, tagOf(c.step, sent, wallMs()), done);
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const ms = wallMs() - start;
  await Promise.race([allAcked, new Promise((r) => setTimeout(r, 15_000))]);
  return { ok: 'publish', sent, acked, failed, ms, errors: [...errors] };
}

/**
 * Durable ingest: `conns` sockets each keep `window` chat.send requests in flight for `ms`,
 * spread over `rooms` rooms; counts the acks (each one means the store has the message).
 */
async function ingest(c: Extract<Command, { cmd: 'ingest' }>): Promise<Reply> {
  let acked = 0;
  let failed = 0;
  const deadline = performance.now() + c.ms;
  const start = performance.now();
  let ended = 0;
  await Promise.all(
    Array.from(
      { length: c.conns },
      (_, n) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(wsUrl(c.url, '/eventbus/websocket'));
          closers.push(() => ws.terminate());
          let next = 0;
          let inFlight = 0;
          const room = `ingest-${c.tag}-${n % c.rooms}`;
          const sendOne = (): void => {
            inFlight++;
            const id = `${c.tag}-${n}-${next++}`;
            ws.send(
              JSON.stringify({
                type: 'send',
                address: Chat.send,
                replyAddress: `i${next}`,
                body: { room, user: `u${n}`, clientMsgId: id, text: 'durable ingest benchmark message' },
              }),
            );
          };
          ws.once('error', reject);
          ws.once('open', () => {
            for (let i = 0; i < c.window; i++) sendOne();
          });
          ws.on('message', (data: Buffer) => {
            const f = JSON.parse(data.toString()) as { type?: string; address?: string };
            if (!f.address?.startsWith('i')) return;
            inFlight--;
            if (performance.now() < deadline) {
              if (f.type === 'rec') acked++;
              else failed++;
              sendOne();
            } else if (inFlight === 0) {
              ended = Math.max(ended, performance.now());
              ws.close();
              resolve();
            }
          });
        }),
    ),
  );
  return { ok: 'ingest', acked, failed, ms: Math.min(c.ms, (ended || performance.now()) - start) };
}

interface StormClient {
  room?: Room;
  client: ChatClient;
  seen: Set<number>;
  duplicates: number;
}
const storm: StormClient[] = [];
const problems = new Map<string, number>();

/** Counts a failure by its kind and message (printed with BENCH_STORM_DEBUG=1). */
function problem(kind: string, err: unknown): void {
  const key = `${kind} ${(err instanceof Error ? err.message : String(err)).slice(0, 60)}`;
  problems.set(key, (problems.get(key) ?? 0) + 1);
}

/** Reconnect storm: messages-lib clients (reconnect, rejoin with since, replay), one room. */
async function stormConnect(c: Extract<Command, { cmd: 'storm' }>): Promise<Reply> {
  let failed = 0;
  for (let i = 0; i < c.count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, c.count - i) }, async (_, j) => {
        const client = new ChatClient({
          url: c.urls,
          user: `storm-${process.pid}-${i + j}`,
          WebSocket: WebSocket as unknown as NonNullable<
            ConstructorParameters<typeof ChatClient>[0]['WebSocket']
          >,
        });
        const entry: StormClient = { client, seen: new Set(), duplicates: 0 };
        try {
          await client.connect();
          // A join refused under load (request timeout) is retried, as a user's app would.
          let room: Awaited<ReturnType<ChatClient['join']>> | undefined;
          for (let attempt = 1; !room; attempt++) {
            try {
              room = await client.join(c.room);
            } catch (err) {
              if (attempt >= 5) throw err;
              await new Promise((r) => setTimeout(r, 500 * attempt));
            }
          }
          entry.room = room;
          client.on('error', (err) => problem('error', err));
          room.on('message', (m) => {
            if (entry.seen.has(m.seq)) entry.duplicates++;
            else entry.seen.add(m.seq);
          });
          storm.push(entry);
          closers.push(() => void client.close().catch((err: unknown) => problem('close', err)));
        } catch {
          failed++; // counted, not thrown: the storm reports how many clients could not join
          void client.close().catch((err: unknown) => problem('close', err));
        }
      }),
    );
  }
  return { ok: 'storm', joined: storm.length, failed };
}

function stormStatus(upTo: number): Reply {
  let open = 0;
  let caughtUp = 0;
  let lost = 0;
  let duplicates = 0;
  for (const e of storm) {
    if (e.client.state === 'open') open++;
    let missing = 0;
    for (let s = 1; s <= upTo; s++) if (!e.seen.has(s)) missing++;
    if (missing === 0 && e.client.state === 'open') caughtUp++;
    lost += missing;
    duplicates += e.duplicates;
  }
  if (process.env.BENCH_STORM_DEBUG === '1') {
    const states = new Map<string, number>();
    for (const e of storm) states.set(e.room?.state ?? '-', (states.get(e.room?.state ?? '-') ?? 0) + 1);
    process.stderr.write(
      `loadgen ${process.pid}: rooms ${JSON.stringify([...states])} ${JSON.stringify([...problems])}\n`,
    );
  }
  return { ok: 'stormStatus', open, caughtUp, lost, duplicates };
}

function report(step: number): Reply {
  const s = stats(step);
  const hist: [number, number][] = [];
  for (let b = 0; b < s.hist.length; b++) if (s.hist[b]) hist.push([b, s.hist[b]!]);
  return { ok: 'report', received: s.received, hist };
}

async function handle(c: Command): Promise<Reply> {
  switch (c.cmd) {
    case 'connect':
      return connect(c);
    case 'publish':
      return publish(c);
    case 'report':
      return report(c.step);
    case 'roomsConnect':
      return roomsConnect(c);
    case 'roomsProbe':
      return roomsProbe(c);
    case 'roomsSend':
      return roomsSend(c);
    case 'ingest':
      return ingest(c);
    case 'storm':
      return stormConnect(c);
    case 'stormStatus':
      return stormStatus(c.upTo);
    case 'probed':
      return { ok: 'probed', count: probes.filter((p) => p >= c.id).length };
    case 'close':
      for (const close of closers.splice(0)) close();
      return { ok: 'close' };
  }
}

process.on('message', (c: Command) => {
  handle(c).then(
    (r) => process.send!(r),
    (err: unknown) => process.send!({ error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
