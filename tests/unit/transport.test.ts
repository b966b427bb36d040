import net from 'node:net';
import { expect } from 'chai';
import { TcpTransport } from '../../backend/src/eventbus/tcp/tcp-transport.js';
import {
  encodeHello,
  encodeMessage,
  FrameDecoder,
  FrameError,
  FrameKind,
} from '../../backend/src/eventbus/tcp/frames.js';
import { ClusteredEventBus, type Message, ReplyException } from '../../backend/src/eventbus/index.js';
import { MemoryRegistry } from '../helpers/memory-cluster.js';

const MAX_FRAME = 1024 * 1024;

function node(registry: MemoryRegistry, nodeId: string): ClusteredEventBus {
  return new ClusteredEventBus({
    cluster: registry.manager(),
    nodeId,
    transport: new TcpTransport({ nodeId, host: '127.0.0.1', port: 0, maxFrameBytes: MAX_FRAME }),
    defaultTimeoutMs: 2_000,
  });
}

async function until(what: string, check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sends raw bytes to a port and collects what comes back until the server closes. */
function rawExchange(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    setTimeout(() => socket.destroy(), 5_000).unref();
  });
}

describe('node-to-node frames', () => {
  it('round-trips a message with headers, reply address and failure', () => {
    const decoder = new FrameDecoder(MAX_FRAME);
    const bytes = encodeMessage({
      address: 'a.b',
      send: true,
      replyAddress: '__sb.reply.n1.1',
      headers: { k: 'v' },
      codec: 'json',
      body: Buffer.from('{"x":1}'),
      failure: { type: 'RECIPIENT_FAILURE', code: 7, message: 'no' },
    });
    // Fed byte by byte, as a slow link would deliver it.
    const frames = [...bytes].flatMap((b) => decoder.push(Buffer.from([b])));
    expect(frames).to.have.length(1);
    const f = frames[0]!;
    expect(f.kind).to.equal(FrameKind.MESSAGE);
    if (f.kind !== FrameKind.MESSAGE) return;
    expect(f.message.address).to.equal('a.b');
    expect(f.message.headers).to.deep.equal({ k: 'v' });
    expect(f.message.failure?.code).to.equal(7);
    expect(f.message.body.toString()).to.equal('{"x":1}');
  });

  it('rejects oversized, empty and unknown frames', () => {
    const big = Buffer.alloc(5);
    big.writeUInt32BE(MAX_FRAME + 1, 0);
    expect(() => new FrameDecoder(MAX_FRAME).push(big)).to.throw(FrameError, /exceeds the limit/);
    expect(() => new FrameDecoder(MAX_FRAME).push(Buffer.alloc(4))).to.throw(FrameError, /length 0/);
    const unknown = Buffer.from([0, 0, 0, 1, 99]);
    expect(() => new FrameDecoder(MAX_FRAME).push(unknown)).to.throw(FrameError, /unknown frame kind/);
  });
});

describe('event bus across nodes over TCP (in-memory registry)', () => {
  let registry: MemoryRegistry;
  let a: ClusteredEventBus;
  let b: ClusteredEventBus;
  let c: ClusteredEventBus;

  beforeEach(async () => {
    registry = new MemoryRegistry();
    a = node(registry, 'node-a');
    b = node(registry, 'node-b');
    c = node(registry, 'node-c');
    await Promise.all([a.start(), b.start(), c.start()]);
  });
  afterEach(async () => {
    await Promise.allSettled([a.close(), b.close(), c.close()]);
  });

  it('requests a consumer on another node and gets its reply', async () => {
    b.consumer('svc', (m: Message<number>) => m.reply(m.body * 2));
    const reply = await a.request<number>('svc', 21);
    expect(reply.body).to.equal(42);
  });

  it('spreads sends round-robin over the nodes that have consumers', async () => {
    const hits: Record<string, number> = { b: 0, c: 0 };
    b.consumer('rr', (m) => {
      hits.b! += 1;
      m.reply('b');
    });
    c.consumer('rr', (m) => {
      hits.c! += 1;
      m.reply('c');
    });
    for (let i = 0; i < 10; i++) await a.request('rr', i);
    expect(hits).to.deep.equal({ b: 5, c: 5 });
  });

  it('publishes one copy to every consumer on every node', async () => {
    const got: string[] = [];
    b.consumer('news', () => void got.push('b1'));
    b.consumer('news', () => void got.push('b2'));
    c.consumer('news', () => void got.push('c1'));
    a.consumer('news', () => void got.push('a1'));
    a.publish('news', 'hello');
    await until('4 deliveries', () => got.length === 4);
    expect(got.sort()).to.deep.equal(['a1', 'b1', 'b2', 'c1']);
  });

  it('keeps sender order across the link', async () => {
    const got: number[] = [];
    b.consumer('seq', (m: Message<number>) => void got.push(m.body));
    for (let i = 0; i < 2_000; i++) a.send('seq', i);
    await until('2000 messages', () => got.length === 2_000);
    expect(got).to.deep.equal([...Array(2_000).keys()]);
  });

  it('keeps local consumers invisible to other nodes', async () => {
    b.localConsumer('private', (m) => m.reply('b'));
    const err = await a.request('private', 1).catch((e: ReplyException) => e);
    expect(err).to.be.instanceOf(ReplyException);
    expect((err as ReplyException).failureType).to.equal('NO_HANDLERS');
    expect((await b.request('private', 1)).body).to.equal('b');
  });

  it('honours localOnly on send', async () => {
    b.consumer('both', (m) => m.reply('b'));
    const err = await a.request('both', 1, { localOnly: true }).catch((e: ReplyException) => e);
    expect((err as ReplyException).failureType).to.equal('NO_HANDLERS');
    a.consumer('both', (m) => m.reply('a'));
    for (let i = 0; i < 4; i++) {
      expect((await a.request('both', i, { localOnly: true })).body).to.equal('a');
    }
  });

  it('carries recipient failures with their code across nodes', async () => {
    c.consumer('fails', (m) => m.fail(503, 'busy'));
    const err = (await a.request('fails', 1).catch((e: unknown) => e)) as ReplyException;
    expect([err.failureType, err.failureCode, err.message]).to.deep.equal(['RECIPIENT_FAILURE', 503, 'busy']);
  });

  it('carries raw bytes across nodes', async () => {
    b.consumer('bin', (m: Message<Buffer>) => m.reply(m.body.subarray(1)));
    const reply = await a.request<Buffer>('bin', Buffer.from([0, 1, 2, 255]));
    expect([...reply.body]).to.deep.equal([1, 2, 255]);
  });

  it('fails fast when the only consumer node is unreachable, and reroutes when another exists', async () => {
    b.consumer('dead', (m) => m.reply('b'));
    // Stop b's transport without telling the registry: its port refuses connections.
    await (b as unknown as { transport: TcpTransport }).transport.close();
    const err = (await a.request('dead', 1, { timeout: 60_000 }).catch((e: unknown) => e)) as ReplyException;
    expect(err.failureType).to.equal('NO_HANDLERS');
    c.consumer('dead', (m) => m.reply('c'));
    for (let i = 0; i < 3; i++) expect((await a.request('dead', i)).body).to.equal('c');
  });

  it('drops a node whose link breaks and whose port then refuses connections, without waiting for its lease', async () => {
    b.consumer('gone', (m) => m.reply('b'));
    expect((await a.request('gone', 1)).body).to.equal('b'); // a holds a link to b
    // b's process dies: its link closes and its port refuses connections; its lease is still there.
    await (b as unknown as { transport: TcpTransport }).transport.close();
    await until('b out of the registry', () => !registry.nodes.has('node-b'));
    const err = (await a.request('gone', 2).catch((e: unknown) => e)) as ReplyException;
    expect(err.failureType).to.equal('NO_HANDLERS');
    expect(registry.nodes.has('node-c')).to.equal(true);
  });

  it('keeps a node whose link broke while its port still answers (a slow or cut-off peer goes by its lease)', async () => {
    b.consumer('kept', (m) => m.reply('b'));
    expect((await a.request('kept', 1)).body).to.equal('b');
    const transport = (a as unknown as { transport: TcpTransport }).transport;
    const probed = transport.probe.bind(transport);
    const verdicts: string[] = [];
    transport.probe = async (peer) => {
      const v = await probed(peer);
      verdicts.push(v);
      return v;
    };
    const links = (transport as unknown as { outbound: Map<string, { socket: net.Socket }> }).outbound;
    links.get('node-b')!.socket.destroy();
    // Asked once, then twice more (a dying process may close its links before its port).
    await until('b probed three times', () => verdicts.length === 3);
    expect(verdicts).to.deep.equal(['answered', 'answered', 'answered']);
    expect(registry.nodes.has('node-b')).to.equal(true);
    expect((await a.request('kept', 2)).body).to.equal('b');
  });

  it('drops a node whose port still answered just after its link broke, once it refuses (a process dying links first)', async () => {
    b.consumer('dying', (m) => m.reply('b'));
    expect((await a.request('dying', 1)).body).to.equal('b');
    const transport = (a as unknown as { transport: TcpTransport }).transport;
    const probed = transport.probe.bind(transport);
    let calls = 0;
    // The first probe lands while b's listening socket is still open; then b is gone.
    transport.probe = async (peer) => (++calls === 1 ? 'answered' : probed(peer));
    await (b as unknown as { transport: TcpTransport }).transport.close();
    await until('b out of the registry', () => !registry.nodes.has('node-b'));
    expect(calls, 'probes').to.equal(2);
    expect(registry.nodes.has('node-c')).to.equal(true);
  });

  it('fails a pending request at once when its node leaves', async () => {
    b.consumer('hang', () => {});
    const pending = a.request('hang', 1, { timeout: 60_000 });
    await until('b to receive', () => b.localHandlerCount('hang') === 1);
    await new Promise((r) => setTimeout(r, 50));
    registry.expire('node-b');
    const err = (await pending.catch((e: unknown) => e)) as ReplyException;
    expect(err.failureType).to.equal('ERROR');
  });

  it('answers garbage on the bus port with a protocol error and keeps serving', async () => {
    const port = registry.nodes.get('node-b')!.port;
    const got: number[] = [];
    b.consumer('still', (m: Message<number>) => void got.push(m.body));
    const http = await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(http.toString()).to.match(/switchboard bus protocol error: frame length \d+ exceeds the limit/);
    const noHello = await rawExchange(
      port,
      encodeMessage({ address: 'still', send: true, codec: 'json', body: Buffer.from('99') }),
    );
    expect(noHello.toString()).to.match(/the first frame must be a hello/);
    const badHello = Buffer.from(encodeHello('x'));
    badHello.write('{"magic":"nope"', 5);
    expect((await rawExchange(port, badHello)).toString()).to.match(/protocol error/);
    a.send('still', 1);
    await until('delivery after garbage', () => got.length === 1);
    expect(got).to.deep.equal([1]);
  });
});
