import { expect } from 'chai';
import { WebSocket } from 'ws';
import {
  ChatClient,
  ChatError,
  type ChatMessage,
  type ConnectionState,
  endpointsOf,
  type Room,
} from '../../../messages-lib/src/index.js';
import { Harness, type Request, waitFor } from './fake-server.js';

describe('messages-lib: connect, join, send', () => {
  const h = new Harness();
  afterEach(() => h.closeAll());

  it('connects, joins, sends and gets the ack; the message arrives once', async () => {
    const server = await h.server();
    const client = h.client(server);
    const states: ConnectionState[] = [];
    client.on('state', (s) => states.push(s));
    const hello: string[] = [];
    client.on('hello', (x) => hello.push(x.node));
    await client.connect();
    expect(client.state).to.equal('open');
    const room = await client.join('general');
    const got: ChatMessage[] = [];
    room.on('message', (m) => got.push(m));
    const ack = await room.send('hello');
    expect(ack).to.include.keys('seq', 'id', 'ts');
    expect(ack.seq).to.equal(1);
    await waitFor(() => got.length === 1, 'the message');
    expect(got[0]).to.include({ seq: 1, text: 'hello', user: 'ana' });
    expect(room.messages.map((m) => m.seq)).to.deep.equal([1]);
    expect(room.pending).to.have.length(0);
    expect(states).to.deep.equal(['connecting', 'open']);
    await waitFor(() => hello.length === 1, 'hello');
    expect(client.session).to.be.a('string');
    expect(client.node).to.equal('fake-node');
  });

  it('registers chat.room and chat.presence before requesting chat.join, without since the first time', async () => {
    const server = await h.server();
    server.store('general', 'old 1');
    server.store('general', 'old 2');
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    const frames = server.received.map((r) => r.frame).filter((f) => f.type !== 'ping');
    expect(frames.slice(0, 3).map((f) => [f.type, f.address])).to.deep.equal([
      ['register', 'chat.room.general'],
      ['register', 'chat.presence.general'],
      ['send', 'chat.join'],
    ]);
    expect(frames[2]!.body).to.deep.equal({ room: 'general', user: 'ana' });
    expect(frames[2]!.replyAddress!.length).to.be.at.most(36);
    expect(room.messages.map((m) => m.text)).to.deep.equal(['old 1', 'old 2']);
    expect(room.lastSeq).to.equal(2);
  });

  it('delivers presence updates', async () => {
    const server = await h.server();
    const a = h.client(server, { user: 'ana' });
    const b = h.client(server, { user: 'bob' });
    await Promise.all([a.connect(), b.connect()]);
    const roomA = await a.join('general');
    const seen: string[][] = [];
    roomA.on('presence', (users) => seen.push(users));
    await b.join('general');
    await waitFor(() => seen.some((u) => u.includes('bob')), 'bob in presence');
    expect(roomA.users).to.have.members(['ana', 'bob']);
  });

  it('joining the same room twice returns the same Room', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const [r1, r2] = await Promise.all([client.join('general'), client.join('general')]);
    expect(r1).to.equal(r2);
    expect(server.requestsTo('chat.join')).to.have.length(1);
    expect(client.room('general')).to.equal(r1);
  });

  it('rejects a join refused with 409 with a typed error, and forgets the room', async () => {
    const server = await h.server();
    const first = h.client(server, { user: 'ana' });
    await first.connect();
    await first.join('general');
    const second = h.client(server, { user: 'ana' });
    await second.connect();
    const err = await second.join('general').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ChatError.is(err, 'RECIPIENT_FAILURE', 409), String(err)).to.equal(true);
    expect((err as ChatError).message).to.match(/taken/);
    expect((err as ChatError).retryable).to.equal(false);
    expect(second.room('general')).to.equal(undefined);
  });

  it('sends the resumeToken of the first join on rejoin', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    await client.join('general');
    const token = server.requestsTo('chat.join')[0]!;
    server.terminateAll();
    await waitFor(() => server.requestsTo('chat.join').length === 2, 'the rejoin');
    const rejoin = server.requestsTo('chat.join')[1]!;
    expect(rejoin.body.resumeToken).to.be.a('string').with.length.greaterThan(10);
    expect(token.body.resumeToken).to.equal(undefined);
    expect(rejoin.body.since).to.equal(0);
  });

  it('leave unregisters and sends chat.leave; later sends reject', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    await room.leave();
    expect(room.state).to.equal('left');
    expect(server.requestsTo('chat.leave')).to.have.length(1);
    const unregistered = server.received
      .filter((r) => r.frame.type === 'unregister')
      .map((r) => r.frame.address);
    expect(unregistered).to.have.members(['chat.room.general', 'chat.presence.general']);
    expect(client.room('general')).to.equal(undefined);
    const err = await room.send('late').catch((e: unknown) => e);
    expect(ChatError.is(err, 'CLOSED')).to.equal(true);
  });

  it('refuses blank text and frames over the bridge limit locally', async () => {
    const server = await h.server();
    const client = h.client(server, { maxFrameBytes: 1_000 });
    await client.connect();
    const room = await client.join('general');
    const blank = await room.send('   ').catch((e: unknown) => e);
    expect(ChatError.is(blank, 'INVALID')).to.equal(true);
    const big = await room.send('x'.repeat(2_000)).catch((e: unknown) => e);
    expect(ChatError.is(big, 'INVALID')).to.equal(true);
    expect((big as ChatError).reason).to.equal('frame_too_large');
    expect(room.pending).to.have.length(0);
    expect(server.requestsTo('chat.send')).to.have.length(0);
  });

  it('join before connect() is refused; a bad room name is refused', async () => {
    const server = await h.server();
    const client = h.client(server);
    const err = await client.join('general').catch((e: unknown) => e);
    expect(ChatError.is(err, 'CLOSED')).to.equal(true);
    await client.connect();
    const bad = await client.join('no spaces!').catch((e: unknown) => e);
    expect(ChatError.is(bad, 'INVALID')).to.equal(true);
  });

  it('a join that times out rejects with TIMEOUT', async () => {
    const server = await h.server();
    server.intercept = (req) => (req.address === 'chat.join' ? { kind: 'ignore' } : undefined);
    const client = h.client(server, { requestTimeoutMs: 100 });
    await client.connect();
    const err = await client.join('general').catch((e: unknown) => e);
    expect(ChatError.is(err, 'TIMEOUT')).to.equal(true);
  });

  it('a join the bridge refuses (token without the room) rejects at once with the refusal', async () => {
    const server = await h.server();
    server.deniedRooms.add('secret');
    const client = h.client(server, { requestTimeoutMs: 5_000 });
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    const [denied, allowed] = await Promise.allSettled([client.join('secret'), client.join('general')]);
    expect(denied.status).to.equal('rejected');
    const err = (denied as PromiseRejectedResult).reason as unknown;
    expect(ChatError.is(err, 'BRIDGE'), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('access_denied');
    expect(allowed.status).to.equal('fulfilled');
    expect(client.room('secret')).to.equal(undefined);
    expect(errors).to.deep.equal([]); // reported to the join, not as stray errors
  });

  it('after a rate_limited refusal, a refusal still reaches the join it names, and no pings surround it', async () => {
    const server = await h.server();
    server.deniedRooms.add('secret');
    const client = h.client(server, { requestTimeoutMs: 5_000 });
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    for (const s of server.sockets) s.ws.send(JSON.stringify({ type: 'err', body: 'rate_limited' }));
    await waitFor(() => errors.length === 1, 'the rate_limited error event');
    expect(errors[0]!.reason).to.equal('rate_limited');
    const pingsBefore = server.received.filter((r) => r.frame.type === 'ping').length;
    const started = Date.now();
    const err = await client.join('secret').catch((e: unknown) => e);
    expect(ChatError.is(err, 'BRIDGE'), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('access_denied');
    expect(Date.now() - started, 'refused at once, not by the 5 s timeout').to.be.below(2_000);
    expect(server.received.filter((r) => r.frame.type === 'ping').length).to.equal(pingsBefore);
    expect(errors).to.have.length(1); // the refusal went to the join
  });

  it('a refused request is rejected by its replyAddress, the others are not disturbed', async () => {
    const server = await h.server();
    for (let i = 1; i <= 3; i++) server.store('general', `m${i}`);
    server.intercept = (req) =>
      req.address === 'chat.history' && req.body.beforeSeq === 2
        ? { kind: 'refuse', body: 'rejected' }
        : undefined;
    const client = h.client(server, { requestTimeoutMs: 5_000 });
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    const room = await client.join('general');
    const [refused, answered] = await Promise.allSettled([
      room.fetchHistory({ beforeSeq: 2, limit: 1 }),
      room.fetchHistory({ beforeSeq: 3, limit: 1 }),
    ]);
    expect(refused.status).to.equal('rejected');
    const err = (refused as PromiseRejectedResult).reason as unknown;
    expect(ChatError.is(err, 'BRIDGE'), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('rejected');
    expect(answered.status).to.equal('fulfilled');
    expect((answered as PromiseFulfilledResult<ChatMessage[]>).value.map((m) => m.seq)).to.deep.equal([2]);
    expect(errors).to.deep.equal([]);
  });

  /** Connects and joins `general` on a server that never answers chat.history: `held` gets its requests. */
  async function withHeldHistory(): Promise<{ room: Room; held: Request[]; errors: ChatError[] }> {
    const server = await h.server();
    const held: Request[] = [];
    server.intercept = (req) => {
      if (req.address !== 'chat.history') return undefined;
      held.push(req);
      return { kind: 'ignore' };
    };
    const client = h.client(server, { requestTimeoutMs: 5_000 });
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    return { room: await client.join('general'), held, errors };
  }

  it('an err frame with a top-level address and no body is the reply failure of the request it is addressed to', async () => {
    const { room, held, errors } = await withHeldHistory();
    const withFields = room.fetchHistory({ afterSeq: 0, limit: 1 }).catch((e: unknown) => e);
    const bare = room.fetchHistory({ afterSeq: 0, limit: 2 }).catch((e: unknown) => e);
    await waitFor(() => held.length === 2, 'both requests');
    const byLimit = (limit: number): Request => held.find((r) => r.body.limit === limit)!;
    const started = Date.now();
    // As Vert.x sends a reply failure, then with nothing but the address: still not a refusal,
    // which always has a string body.
    const failure = {
      type: 'err',
      address: byLimit(1).replyAddress,
      failureType: 'RECIPIENT_FAILURE',
      failureCode: 503,
      message: 'store down',
    };
    byLimit(1).socket.ws.send(JSON.stringify(failure));
    byLimit(2).socket.ws.send(JSON.stringify({ type: 'err', address: byLimit(2).replyAddress }));
    const [first, second] = await Promise.all([withFields, bare]);
    expect(first).to.be.instanceOf(ChatError).and.include({ failureType: 'RECIPIENT_FAILURE', code: 503 });
    expect(second).to.be.instanceOf(ChatError).and.include({ failureType: 'ERROR' });
    expect(Date.now() - started, 'failed at once, not by the 5 s timeout').to.be.below(2_000);
    expect(errors, 'no refusal reported').to.deep.equal([]);
  });

  it('a refusal whose `refused.replyAddress` names a request rejects it; other shapes name nothing', async () => {
    const { room, held, errors } = await withHeldHistory();
    const request = room.fetchHistory({ afterSeq: 0, limit: 1 }).catch((e: unknown) => e);
    await waitFor(() => held.length === 1, 'the request');
    const { replyAddress, socket } = held[0]!;
    const started = Date.now();
    // Only `refused` names a frame, and only with strings: each of these is a stray refusal.
    socket.ws.send(JSON.stringify({ type: 'err', body: 'rejected', replyAddress }));
    socket.ws.send(
      JSON.stringify({ type: 'err', body: 'rejected', refused: { replyAddress: [replyAddress] } }),
    );
    socket.ws.send(JSON.stringify({ type: 'err', body: 'rejected', refused: replyAddress }));
    socket.ws.send(JSON.stringify({ type: 'err', body: 'rejected', refused: { replyAddress } }));
    const err = await request;
    expect(ChatError.is(err, 'BRIDGE'), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('rejected');
    expect(Date.now() - started, 'refused at once, not by the 5 s timeout').to.be.below(2_000);
    expect(errors.map((e) => [e.failureType, e.reason])).to.deep.equal([
      ['BRIDGE', 'rejected'],
      ['BRIDGE', 'rejected'],
      ['BRIDGE', 'rejected'],
    ]);
  });

  it('a send the bridge refuses is refused for good: rejected at once, out of the outbox', async () => {
    const server = await h.server();
    server.intercept = (req) =>
      req.address === 'chat.send' && req.body.text === 'no'
        ? { kind: 'refuse', body: 'rejected' }
        : undefined;
    const client = h.client(server, { requestTimeoutMs: 5_000 });
    await client.connect();
    const room = await client.join('general');
    const failed: string[] = [];
    room.on('sendFailed', (f) => failed.push(f.entry.text ?? ''));
    const err = await room.send('no').catch((e: unknown) => e);
    expect(ChatError.is(err, 'BRIDGE'), String(err)).to.equal(true);
    expect(failed).to.deep.equal(['no']);
    expect(room.pending).to.have.length(0);
    expect((await room.send('yes')).seq).to.equal(1);
  });

  it('a server that names no refused frame: the refusal is an error event, the join times out', async () => {
    const server = await h.server();
    server.namesRefusedFrames = false;
    server.deniedRooms.add('secret');
    const client = h.client(server, { requestTimeoutMs: 150 });
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    const err = await client.join('secret').catch((e: unknown) => e);
    expect(ChatError.is(err, 'TIMEOUT'), String(err)).to.equal(true);
    expect(errors.map((e) => e.reason)).to.deep.equal(['access_denied', 'access_denied', 'access_denied']);
  });

  it('a refusal naming a frame the client does not know is an error event', async () => {
    const server = await h.server();
    const client = h.client(server);
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    const stray = {
      type: 'err',
      body: 'access_denied',
      refused: { address: 'chat.join', replyAddress: 'not-ours' },
    };
    for (const s of server.sockets) s.ws.send(JSON.stringify(stray));
    await waitFor(() => errors.length === 1, 'the error event');
    expect(errors[0]).to.include({ failureType: 'BRIDGE', reason: 'access_denied' });
  });

  it('a bridge error frame becomes an error event', async () => {
    const server = await h.server();
    const client = h.client(server);
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    for (const s of server.sockets) s.ws.send(JSON.stringify({ type: 'err', body: 'access_denied' }));
    await waitFor(() => errors.length === 1, 'the error event');
    expect(errors[0]!.failureType).to.equal('BRIDGE');
    expect(errors[0]!.reason).to.equal('access_denied');
  });

  it('fetchHistory pages back with beforeSeq without touching the stream', async () => {
    const server = await h.server();
    for (let i = 1; i <= 10; i++) server.store('general', `m${i}`);
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    const older = await room.fetchHistory({ beforeSeq: 4, limit: 2 });
    expect(older.map((m) => m.seq)).to.deep.equal([2, 3]);
    expect(room.messages).to.have.length(10);
  });
});

describe('messages-lib: configuration', () => {
  it('says clearly when there is no WebSocket implementation', function () {
    const g = globalThis as { WebSocket?: unknown };
    const saved = g.WebSocket;
    delete g.WebSocket;
    try {
      expect(() => new ChatClient({ url: 'http://127.0.0.1:1', user: 'ana' }))
        .to.throw(ChatError, /WebSocket/)
        .with.property('failureType', 'CONFIG');
    } finally {
      if (saved !== undefined) g.WebSocket = saved;
    }
  });

  it('derives the WebSocket and files endpoints from http(s) and ws(s) URLs', () => {
    expect(endpointsOf('http://host:8080')).to.deep.equal({
      websocket: 'ws://host:8080/eventbus/websocket',
      files: 'http://host:8080/files',
    });
    expect(endpointsOf('https://chat.example.com/')).to.deep.equal({
      websocket: 'wss://chat.example.com/eventbus/websocket',
      files: 'https://chat.example.com/files',
    });
    expect(endpointsOf('wss://h/prefix/eventbus/websocket')).to.deep.equal({
      websocket: 'wss://h/prefix/eventbus/websocket',
      files: 'https://h/prefix/files',
    });
    expect(endpointsOf('ws://h:1/sb')).to.deep.equal({
      websocket: 'ws://h:1/sb/eventbus/websocket',
      files: 'http://h:1/sb/files',
    });
    expect(() => endpointsOf('ftp://h')).to.throw(ChatError, /http/);
    expect(() => new ChatClient({ url: 'not a url', user: 'ana', WebSocket })).to.throw(ChatError);
  });

  it('refuses bad options', () => {
    expect(() => new ChatClient({ url: 'http://h', user: '', WebSocket })).to.throw(ChatError, /user/);
    expect(() => new ChatClient({ url: 'http://h', user: 'a', WebSocket, heartbeatMs: 0 })).to.throw(
      ChatError,
      /heartbeatMs/,
    );
  });
});
