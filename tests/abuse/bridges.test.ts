/**
 * Attacks on the bridges of one real node in open mode (issue 19: items 1, 6-12), each while a
 * bystander chats from another address. For each: the node stays up, its RSS stays under
 * RSS_BOUND_MIB, /health answers, the bystander sees no error, the attacker gets the documented
 * error (docs/security.md).
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { chatClient, eventBusClient, unaryCall } from '../helpers/grpc-clients.js';
import { closeAll, type Frame, WsClient } from '../helpers/ws-client.js';
import { waitFor } from '../infra/proc.js';
import { AbuseNode, Bystander, RSS_BOUND_MIB } from './abuse-node.js';

const ATTACKER = '127.0.0.1';
const FILLER = '127.0.0.2';

const PERMISSIONS = JSON.stringify({
  inbound: [{ addressRegex: 'test\\..+' }],
  outbound: [{ addressRegex: 'test\\..+' }],
});

let seq = 0;
const uniq = (p: string): string => `${p}-${process.pid}-${++seq}`;

/** Samples the node's RSS every 100 ms while `fn` runs; returns the highest. */
async function peakRss<T>(node: AbuseNode, fn: () => Promise<T>): Promise<{ result: T; peakMiB: number }> {
  let peak = node.rssMiB();
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, node.rssMiB());
    } catch {
      // the process is gone: the health check after the attack says so
    }
  }, 100);
  try {
    const result = await fn();
    const peakMiB = Math.max(peak, node.rssMiB());
    console.log(`      peak RSS ${peakMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB})`);
    return { result, peakMiB };
  } finally {
    clearInterval(timer);
  }
}

/** Sends `count` messages of `size` characters to `room`, 16 at a time, each acked. */
async function fillRoom(url: string, room: string, count: number, size: number): Promise<void> {
  const c = await WsClient.connect(url, { localAddress: FILLER });
  try {
    const text = 'x'.repeat(size);
    for (let i = 0; i < count; i += 16) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 16); j++) {
        batch.push(c.call('chat.send', { room, user: 'filler', clientMsgId: `fill-${j}`, text }));
      }
      await Promise.all(batch);
      // past the burst (400 frames), keep under the rate (200 frames a second)
      if (i >= 320) await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.close();
  }
}

describe('abuse: bridges (one node, open mode)', function () {
  this.timeout(180_000);
  let node: AbuseNode;
  let bystander: Bystander;
  const sockets: WsClient[] = [];
  const grpcClients: grpc.Client[] = [];
  const bigRoom = uniq('big');

  before(async function () {
    this.timeout(180_000);
    node = await AbuseNode.start('abuse-bridges', {
      BRIDGE_PERMISSIONS: PERMISSIONS,
      BRIDGE_MAX_CONNECTIONS_PER_ADDRESS: '200',
      // No recent tail: every read goes to the store, the expensive path an attacker aims at (with
      // the tail, these pages are answered from memory before the in-flight limits are reached).
      STORE_TAIL_MESSAGES: '0',
    });
    await fillRoom(node.url, bigRoom, 500, 4_000);
    bystander = await Bystander.join(node, uniq('calm'));
  });

  beforeEach(() => bystander?.start());

  afterEach(async function () {
    this.timeout(60_000);
    await closeAll(sockets.splice(0));
    for (const c of grpcClients.splice(0)) c.close();
    if (this.currentTest?.state === 'failed') return;
    await node.expectHealthy();
    await bystander.stopAndCheck();
  });

  after(async function () {
    this.timeout(60_000);
    await bystander?.close();
    await node?.stop();
  });

  const attacker = async (): Promise<WsClient> => {
    const c = await WsClient.connect(node.url, { localAddress: ATTACKER });
    sockets.push(c);
    return c;
  };

  it('1: amplified chat.history reads over WebSocket stay bounded (in-flight per socket, bytes per socket)', async () => {
    const { result: refused, peakMiB } = await peakRss(node, async () => {
      // Six sockets, 400 requests each for 500 messages of 4,000 characters (2 MB a reply), inside
      // the frame rate; five never read. The sixth reads, to see what the node answers.
      const quiet = await Promise.all([1, 2, 3, 4, 5].map(() => attacker()));
      for (const c of quiet) c.pause();
      const reader = await attacker();
      const all = [...quiet, reader];
      for (let i = 0; i < 400; i++) {
        for (const c of all) {
          c.send({
            type: 'send',
            address: 'chat.history',
            body: { room: bigRoom, limit: 500 },
            replyAddress: `h${i}`,
          });
        }
      }
      const refusal = await reader.next(
        (f) => f.type === 'err' && f.failureCode === 429,
        'a too_many_requests refusal',
        30_000,
      );
      // Every frame of the reader handled (the pong comes after them), then some time for the
      // reads in flight to finish while the RSS is sampled; the quiet ones are cut by then (1013)
      // or hold at most their in-flight share.
      await reader.ping(60_000);
      await new Promise((r) => setTimeout(r, 3_000));
      for (const c of quiet) c.terminate();
      return refusal;
    });
    expect(String(refused.message)).to.match(/^too_many_requests: at most 16 requests per connection/);
    expect(peakMiB, 'peak RSS (MiB)').to.be.below(RSS_BOUND_MIB);
  });

  it('1: chat.history and chat.join sent without a reply address read nothing from the store', async () => {
    const reads = async (): Promise<number> => {
      const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
      let n = 0;
      for (const line of text.split('\n')) {
        const m = /^switchboard_store_operation_duration_seconds_count\{([^}]*)\} (\d+)/.exec(line);
        if (m && /op="(history|latest|lastSeq)"/.test(m[1]!)) n += Number(m[2]);
      }
      return n;
    };
    const before = await reads();
    const c = await attacker();
    for (let i = 0; i < 100; i++) {
      c.send({ type: 'send', address: 'chat.history', body: { room: bigRoom, limit: 500 } });
      c.send({ type: 'send', address: 'chat.join', body: { room: bigRoom, user: `ghost${i}`, since: 0 } });
    }
    await c.ping(30_000);
    // the pong follows the frames; the requests they put on the bus have run by the next read
    const settled = await c.request('chat.history', { room: uniq('empty'), limit: 1 });
    expect(settled.type).to.equal('rec');
    expect((await reads()) - before, 'store reads for 200 fire-and-forget reads').to.be.at.most(2);
  });

  it('1: 300 concurrent Chat.History calls on one gRPC channel are refused beyond the in-flight limit', async () => {
    const chat = chatClient(`127.0.0.1:${node.grpcPort}`, { 'grpc.use_local_subchannel_pool': 1 });
    grpcClients.push(chat);
    const { result, peakMiB } = await peakRss(node, () =>
      Promise.all(
        Array.from({ length: 300 }, () => unaryCall(chat, 'history', { room: bigRoom, limit: 500 })),
      ),
    );
    const exhausted = result.filter((r) => r.error?.code === grpc.status.RESOURCE_EXHAUSTED);
    expect(exhausted.length, 'refused calls').to.be.greaterThan(0);
    expect(exhausted[0]!.error!.details).to.match(/^(too_many_requests|rate_limited): /);
    expect(result.filter((r) => !r.error).length, 'answered calls').to.be.greaterThan(0);
    expect(peakMiB, 'peak RSS (MiB)').to.be.below(RSS_BOUND_MIB);
  });

  it('7: gRPC calls past the rate, and streams past the per-connection limit, are RESOURCE_EXHAUSTED', async () => {
    const chat = chatClient(`127.0.0.1:${node.grpcPort}`, { 'grpc.use_local_subchannel_pool': 1 });
    const bus = eventBusClient(`127.0.0.1:${node.grpcPort}`, { 'grpc.use_local_subchannel_pool': 1 });
    grpcClients.push(chat, bus);
    const room = uniq('grpc-rate');
    const sends = await Promise.all(
      Array.from({ length: 2_000 }, (_, i) =>
        unaryCall(chat, 'send', { room, user: 'mallory', clientMsgId: `m${i}`, text: 'hi' }),
      ),
    );
    const limited = sends.filter((r) => r.error?.code === grpc.status.RESOURCE_EXHAUSTED);
    expect(limited.length, 'calls refused').to.be.greaterThan(0);
    expect(limited.map((r) => r.error!.details.split(':')[0])).to.include.oneOf([
      'rate_limited',
      'too_many_requests',
    ]);
    // Streams: 300 Subscribe on one connection; the limit is 100 (GRPC_MAX_STREAMS_PER_CONNECTION).
    await new Promise((r) => setTimeout(r, 2_100)); // the rate bucket refills (bursts of 400)
    const statuses: Promise<grpc.StatusObject>[] = [];
    const calls: grpc.ClientReadableStream<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      const call = bus.subscribe({ address: `test.sub.${i}` }) as grpc.ClientReadableStream<unknown>;
      call.on('error', () => {});
      calls.push(call);
      statuses.push(new Promise((r) => call.on('status', r)));
    }
    const refused = await waitFor(
      'streams refused',
      async () => {
        const done = await Promise.all(
          statuses.map((s) =>
            Promise.race([s, new Promise<undefined>((r) => setImmediate(() => r(undefined)))]),
          ),
        );
        const n = done.filter((s) => s?.code === grpc.status.RESOURCE_EXHAUSTED);
        return n.length >= 200 ? n : undefined;
      },
      30_000,
      100,
    );
    expect(refused[0]!.details).to.match(/^too_many_streams: at most 100 streams per connection/);
    for (const c of calls) c.cancel();
    await Promise.all(statuses);
    // Ended streams give their slots back: the connection can subscribe again.
    const again = bus.subscribe({ address: 'test.sub.again' }) as grpc.ClientReadableStream<unknown>;
    again.on('error', () => {});
    const md = await new Promise<grpc.Metadata>((r) => again.once('metadata', r));
    expect(md.get('vertx-event-bus-consumer-id')[0]).to.be.a('string');
    again.cancel();
  });

  it('7: connections past BRIDGE_MAX_CONNECTIONS_PER_ADDRESS get too_many_connections (1013)', async () => {
    const opened = await Promise.all(
      Array.from({ length: 200 }, () => WsClient.connect(node.url, { localAddress: ATTACKER })),
    );
    sockets.push(...opened);
    const extra = await attacker();
    const err = await extra.nextError('too_many_connections', 10_000);
    expect(String(err.message)).to.equal('at most 200 connections per client address');
    expect((await extra.waitClose(10_000)).code).to.equal(1013);
  });

  it('6: SockJS clients that never read are cut at BRIDGE_MAX_BUFFERED_BYTES', async () => {
    const room = uniq('sockjs-slow');
    const readers: WebSocket[] = [];
    const closed: Promise<string>[] = [];
    const { peakMiB } = await peakRss(node, async () => {
      for (let i = 0; i < 20; i++) {
        const ws = new WebSocket(
          `${node.url.replace('http', 'ws')}/eventbus/000/s${i}x${process.pid}/websocket`,
          {
            localAddress: ATTACKER,
          },
        );
        readers.push(ws);
        const frames: string[] = [];
        ws.on('message', (d: Buffer) => frames.push(d.toString()));
        ws.on('error', () => {});
        closed.push(
          new Promise((resolve) =>
            ws.on('close', () => resolve(frames.find((f) => f.startsWith('c[')) ?? '(no close frame)')),
          ),
        );
        await new Promise((r) => ws.once('open', r));
        ws.send(JSON.stringify([JSON.stringify({ type: 'register', address: `chat.room.${room}` })]));
      }
      // Registered: the ping behind the register frames is answered once they were handled.
      await new Promise((r) => setTimeout(r, 500));
      for (const ws of readers) ws.pause();
      // 4,000 messages of 4,000 characters (16 MB for each reader), from 5 senders at their frame rate:
      // far more than BRIDGE_MAX_BUFFERED_BYTES (4 MiB) plus what the kernel buffers hold.
      const senders = await Promise.all(
        [0, 1, 2, 3, 4].map(() => WsClient.connect(node.url, { localAddress: FILLER })),
      );
      sockets.push(...senders);
      const text = 'y'.repeat(4_000);
      await Promise.all(
        senders.map(async (sender, k) => {
          for (let i = 0; i < 800; i += 100) {
            for (let j = i; j < i + 100; j++)
              sender.send({
                type: 'send',
                address: 'chat.send',
                body: { room, user: `flooder${k}`, clientMsgId: `f${k}-${j}`, text },
              });
            await sender.ping(30_000);
            await new Promise((r) => setTimeout(r, 500));
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 1_000));
      for (const ws of readers) ws.resume();
    });
    const codes = await Promise.all(
      closed.map((p) => Promise.race([p, new Promise<string>((r) => setTimeout(() => r('(open)'), 30_000))])),
    );
    for (const ws of readers) ws.terminate();
    expect(
      codes.every((c) => c === 'c[1013,"client is not reading"]'),
      codes.join(' '),
    ).to.equal(true);
    expect(peakMiB, 'peak RSS (MiB)').to.be.below(RSS_BOUND_MIB);
  });

  it('8: replies go only through unguessable aliases, and only the recipient can use one', async () => {
    const address = uniq('test.ask');
    const responder = await attacker();
    await responder.register(address);
    const requester = await attacker();
    const answer = requester.request(address, { q: 1 }, undefined, 10_000);
    const delivered = await responder.nextRec(address);
    expect(delivered.replyAddress).to.match(/^[0-9a-f-]{36}$/);
    expect(delivered.replyAddress).to.not.contain('__sb');
    // A third party that learns the alias cannot use it: it is the responder's socket's only.
    const mallory = await attacker();
    mallory.send({ type: 'send', address: delivered.replyAddress, body: 'forged' });
    mallory.send({ type: 'send', address: '__sb.reply.x.1', body: 'forged' });
    await mallory.nextError('access_denied'); // an alias is no address a client may send to
    const denied = await mallory.nextError('access_denied');
    expect(denied.message).to.equal('reserved address');
    responder.send({ type: 'send', address: delivered.replyAddress, body: 'genuine' });
    expect((await answer).body).to.equal('genuine');

    // gRPC: a subscriber's alias, answered by another client address, is refused.
    const bus = eventBusClient(`127.0.0.1:${node.grpcPort}`, { 'grpc.use_local_subchannel_pool': 1 });
    const other = eventBusClient(`127.0.0.1:${node.grpcPort}`, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.primary_user_agent': 'other',
    });
    grpcClients.push(bus, other);
    const gaddress = uniq('test.gask');
    const sub = bus.subscribe({ address: gaddress }) as grpc.ClientReadableStream<{ replyAddress?: string }>;
    sub.on('error', () => {});
    const first = new Promise<{ replyAddress?: string }>((r) => sub.once('data', r));
    await new Promise((r) => sub.once('metadata', r));
    const asked = requester.request(gaddress, { q: 2 }, undefined, 10_000);
    const msg = await first;
    expect(msg.replyAddress).to.match(/^[0-9a-f-]{36}$/);
    const forged = await unaryCall(other, 'send', {
      address: '__sb.reply.node.1',
      body: { text: '"x"' },
    });
    expect(forged.error?.code).to.equal(grpc.status.PERMISSION_DENIED);
    const ok = await unaryCall(bus, 'send', { address: msg.replyAddress, body: { text: '"genuine"' } });
    expect(ok.error).to.equal(undefined);
    expect((await asked).body).to.equal('genuine');
    sub.cancel();
  });

  it('9: recipients get what the sender sent, without sb-node, sb-session or traceparent', async () => {
    const address = uniq('test.headers');
    const rx = await attacker();
    await rx.register(address);
    const tx = await attacker();
    tx.send({ type: 'publish', address, body: { a: 1 }, headers: { app: 'x' } });
    const got = await rx.nextRec(address);
    expect(got.headers).to.deep.equal({ app: 'x' });
    const room = uniq('hdr-room');
    await rx.register(`chat.room.${room}`);
    await tx.call('chat.send', { room, user: 'tx', clientMsgId: 'h1', text: 'hello' });
    const msg = await rx.nextRec(`chat.room.${room}`);
    expect(msg.headers ?? {}).to.not.have.any.keys('sb-node', 'sb-session', 'traceparent');
  });

  it("10: another user's clientMsgId is refused (409), not acked with the first user's seq", async () => {
    const room = uniq('dup');
    const ana = await attacker();
    const ackA = await ana.call<{ seq: number }>('chat.send', {
      room,
      user: 'ana',
      clientMsgId: 'c1',
      text: 'A',
    });
    const bob = await attacker();
    const r = await bob.request('chat.send', { room, user: 'bob', clientMsgId: 'c1', text: 'B' });
    expect(r.type).to.equal('err');
    expect(r.failureCode).to.equal(409);
    expect(String(r.message)).to.match(/^clientMsgId: already used in this room by another user/);
    const again = await ana.call<{ seq: number }>('chat.send', {
      room,
      user: 'ana',
      clientMsgId: 'c1',
      text: 'A',
    });
    expect(again.seq).to.equal(ackA.seq);
  });

  it('11: text with control characters or bidi overrides is refused (400); a DNS-rebinding origin is refused', async () => {
    const c = await attacker();
    const room = uniq('ctl');
    for (const text of ['nul\u0000', 'esc \u001b[2J', 'bidi \u202e evil', 'isolate \u2066x']) {
      const r = await c.request('chat.send', { room, user: 'mallory', clientMsgId: `t${seq++}`, text });
      expect(r.failureCode, JSON.stringify(text)).to.equal(400);
      expect(String(r.message)).to.match(/^text: no control characters/);
    }
    const fine = await c.call('chat.send', { room, user: 'mallory', clientMsgId: 'ok', text: 'a\tb\r\nc' });
    expect(fine).to.have.property('seq');
    const port = new URL(node.url).port;
    const rebound = await WsClient.connect(node.url, {
      origin: `http://rebind.example:${port}`,
      headers: { host: `rebind.example:${port}` },
    });
    sockets.push(rebound);
    expect((await rebound.nextError('access_denied')).message).to.equal('origin not allowed');
    expect((await rebound.waitClose()).code).to.equal(1008);
  });

  it('12: SockJS close codes are numbers; a frame over the hard limit closes the session (1009)', async () => {
    const ws = new WebSocket(`${node.url.replace('http', 'ws')}/eventbus/000/big${process.pid}/websocket`, {
      localAddress: ATTACKER,
    });
    const frames: string[] = [];
    ws.on('message', (d: Buffer) => frames.push(d.toString()));
    ws.on('error', () => {});
    const closed = new Promise<number>((r) => ws.on('close', (code: number) => r(code)));
    await new Promise((r) => ws.once('open', r));
    ws.send(
      JSON.stringify([JSON.stringify({ type: 'send', address: 'x', body: 'z'.repeat(2 * 1024 * 1024) })]),
    );
    expect(await closed).to.equal(1009);
    // xhr transport: the same frame in a POST ends the session with c[1009,…] (numbers, not strings)
    const base = `${node.url}/eventbus/000/xhr${process.pid}`;
    const open = await fetch(`${base}/xhr`, { method: 'POST' });
    expect(await open.text()).to.equal('o\n');
    const big = JSON.stringify([
      JSON.stringify({ type: 'send', address: 'x', body: 'z'.repeat(1100 * 1024) }),
    ]);
    await fetch(`${base}/xhr_send`, { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } });
    let polled = '';
    for (let i = 0; i < 3 && !polled.includes('c['); i++)
      polled += await (await fetch(`${base}/xhr`, { method: 'POST' })).text();
    expect(polled).to.contain('frame_too_large');
    expect(polled).to.contain('c[1009,"frame too large"]');
    // A POST far over the limit is refused before it is read whole, and ends its session too.
    const base2 = `${node.url}/eventbus/000/xhr2${process.pid}`;
    expect(await (await fetch(`${base2}/xhr`, { method: 'POST' })).text()).to.equal('o\n');
    const huge = await fetch(`${base2}/xhr_send`, { method: 'POST', body: 'q'.repeat(3 * 1024 * 1024) });
    expect(huge.status).to.equal(413);
    let polled2 = '';
    for (let i = 0; i < 3 && !polled2.includes('c['); i++)
      polled2 += await (await fetch(`${base2}/xhr`, { method: 'POST' })).text();
    expect(polled2).to.contain('c[1009,"frame too large"]');
  });

  it('fuzz: random WebSocket, SockJS and gRPC frames get errors, never a crash', async () => {
    const rnd = (n: number): string =>
      Array.from({ length: n }, () => String.fromCharCode(Math.floor(Math.random() * 0x3000))).join('');
    const shapes = (): unknown[] => [
      rnd(50),
      '{"type":',
      '[]',
      'null',
      '1e309',
      JSON.stringify({ type: 'send' }),
      JSON.stringify({ type: 'send', address: 'chat.send', body: { room: 1 } }),
      JSON.stringify({
        type: 'send',
        address: 'chat.history',
        body: { room: 'r', limit: 1e9 },
        replyAddress: 'x',
      }),
      JSON.stringify({ type: 'register', address: 'chat.room.' + 'a'.repeat(300) }),
      JSON.stringify({ type: 'publish', address: '__sb.control', body: {} }),
      JSON.stringify({
        type: 'send',
        address: 'chat.join',
        body: { room: 'r', user: 'u', since: -1 },
        replyAddress: 'y',
      }),
      '['.repeat(5_000) + ']'.repeat(5_000),
      JSON.stringify({ type: 'ping', headers: { a: 1 } }),
    ];
    const ws = await attacker();
    for (let i = 0; i < 30; i++) for (const s of shapes()) ws.sendRaw(s as string);
    ws.sendRaw(Buffer.from([0xff, 0xfe, 0x00, 0x80]), true);
    await ws.ping(30_000).catch(() => undefined); // the binary frame may close it: either is fine
    expect(ws.frames.filter((f: Frame) => f.type === 'err').length).to.be.greaterThan(0);

    const sj = new WebSocket(`${node.url.replace('http', 'ws')}/eventbus/000/fz${process.pid}/websocket`);
    sj.on('error', () => {});
    await new Promise((r) => sj.once('open', r));
    for (let i = 0; i < 20; i++) for (const s of shapes()) sj.send(JSON.stringify([s]));
    sj.send('not even json');
    sj.send(JSON.stringify([{ not: 'a string' }]));
    sj.close();
    for (let i = 0; i < 20; i++) {
      await fetch(`${node.url}/eventbus/000/fzx${i}/xhr_send`, { method: 'POST', body: rnd(100) }).catch(
        () => {},
      );
    }

    // gRPC: random bytes as requests of every method
    const raw = new grpc.Client(`127.0.0.1:${node.grpcPort}`, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    grpcClients.push(raw);
    const methods = [
      '/switchboard.chat.v1.Chat/Send',
      '/switchboard.chat.v1.Chat/History',
      '/vertx.event.v1alpha.EventBusBridge/Publish',
      '/vertx.event.v1alpha.EventBusBridge/Request',
      '/no.such.Service/Method',
    ];
    const results = await Promise.all(
      methods.flatMap((m) =>
        Array.from(
          { length: 10 },
          () =>
            new Promise<grpc.ServiceError | null>((resolve) =>
              raw.makeUnaryRequest(
                m,
                (b: Buffer) => b,
                (b: Buffer) => b,
                Buffer.from(rnd(40), 'latin1'),
                { deadline: Date.now() + 10_000 },
                (err) => resolve(err),
              ),
            ),
        ),
      ),
    );
    expect(results.filter((e) => e !== null).length).to.be.greaterThan(0);
  });
});
