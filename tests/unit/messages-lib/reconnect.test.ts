import { expect } from 'chai';
import {
  backoffDelay,
  ChatError,
  type ChatMessage,
  type ClientEvents,
  type ConnectionState,
} from '../../../messages-lib/src/index.js';
import { Harness, sleep, waitFor } from './fake-server.js';

type Reconnecting = ClientEvents['reconnecting'];

describe('messages-lib: reconnect, drain, heartbeat', () => {
  const h = new Harness();
  afterEach(() => h.closeAll());

  it('reconnects with backoff after the server drops the socket, rejoins with since, replays what was missed', async () => {
    const server = await h.server();
    const client = h.client(server);
    const states: ConnectionState[] = [];
    client.on('state', (s) => states.push(s));
    const scheduled: Reconnecting[] = [];
    client.on('reconnecting', (r) => scheduled.push(r));
    await client.connect();
    const room = await client.join('general');
    const seqs: number[] = [];
    room.on('message', (m: ChatMessage) => seqs.push(m.seq));
    await room.send('before');
    await waitFor(() => seqs.length === 1, 'own message');

    server.terminateAll();
    server.store('general', 'missed 1', 'bob');
    server.store('general', 'missed 2', 'bob');
    await waitFor(() => seqs.length === 3, 'the replay');
    expect(seqs).to.deep.equal([1, 2, 3]);
    expect(states).to.deep.equal(['connecting', 'open', 'reconnecting', 'open']);
    expect(scheduled).to.have.length(1);
    expect(scheduled[0]!.code).to.equal(1006);
    expect(scheduled[0]!.delayMs).to.be.within(0, 10); // attempt 0: [0, base)
    const joins = server.requestsTo('chat.join');
    expect(joins).to.have.length(2);
    expect(joins[1]!.body.since).to.equal(1);
    // register before join on the new socket too
    const second = server.connections[1]!;
    const frames = server.received
      .filter((r) => r.socket === second && r.frame.type !== 'ping')
      .map((r) => r.frame);
    expect(frames.slice(0, 3).map((f) => f.address)).to.deep.equal([
      'chat.room.general',
      'chat.presence.general',
      'chat.join',
    ]);
  });

  it('rejoins every joined room after a reconnect', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    await Promise.all([client.join('a'), client.join('b'), client.join('c')]);
    server.terminateAll();
    await waitFor(() => server.requestsTo('chat.join').length === 6, 'three rejoins');
    const rooms = server
      .requestsTo('chat.join')
      .slice(3)
      .map((r) => r.body.room);
    expect(rooms).to.have.members(['a', 'b', 'c']);
  });

  it('retries a rejoin that fails for a while (503) without registering twice on the socket', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    let failures = 2;
    server.intercept = (req) =>
      req.address === 'chat.join' && failures-- > 0
        ? { kind: 'fail', failureType: 'RECIPIENT_FAILURE', code: 503, message: 'store unavailable' }
        : undefined;
    server.terminateAll();
    await waitFor(() => room.state === 'joined' && server.requestsTo('chat.join').length === 2, 'rejoined');
    const second = server.connections[1]!;
    const frames = server.received.filter((r) => r.socket === second).map((r) => r.frame);
    expect(frames.filter((f) => f.type === 'send' && f.address === 'chat.join')).to.have.length(3);
    expect(frames.filter((f) => f.type === 'register').map((f) => f.address)).to.deep.equal([
      'chat.room.general',
      'chat.presence.general',
    ]);
  });

  it('a rejoin refused for good (409: the name was taken meanwhile) stops the room with an error', async () => {
    const server = await h.server();
    const client = h.client(server);
    const clientErrors: ChatError[] = [];
    client.on('error', (e) => clientErrors.push(e));
    await client.connect();
    const room = await client.join('general');
    const roomErrors: ChatError[] = [];
    room.on('error', (e) => roomErrors.push(e));
    server.intercept = (req) =>
      req.address === 'chat.join'
        ? { kind: 'fail', failureType: 'RECIPIENT_FAILURE', code: 409, message: 'taken' }
        : undefined;
    server.terminateAll();
    await waitFor(() => room.state === 'left', 'room stopped');
    expect(roomErrors.map((e) => e.code)).to.deep.equal([409]);
    expect(clientErrors.some((e) => e.code === 409)).to.equal(true);
    expect(client.room('general')).to.equal(undefined);
    expect(client.state).to.equal('open'); // the connection itself goes on
  });

  it('backoff grows with failures and stays within [0, min(max, base·2^attempt)]', async () => {
    const server = await h.server();
    server.refuseWith = 1013;
    const client = h.client(server, { reconnect: { baseMs: 4, maxMs: 20 }, random: () => 0.999 });
    const scheduled: Reconnecting[] = [];
    client.on('reconnecting', (r) => scheduled.push(r));
    const connected = client.connect();
    await waitFor(() => scheduled.length >= 6, 'six refused attempts');
    server.refuseWith = undefined;
    await connected;
    expect(client.state).to.equal('open');
    for (const [i, r] of scheduled.entries()) {
      expect(r.attempt).to.equal(i);
      expect(r.code).to.equal(1013);
      const cap = Math.min(20, 4 * 2 ** r.attempt);
      expect(r.delayMs).to.be.within(0, cap);
      expect(r.delayMs).to.equal(Math.floor(0.999 * cap));
    }
  });

  it('backoffDelay: full jitter within [0, cap], cap doubling up to max', () => {
    const opts = { baseMs: 250, maxMs: 10_000 };
    for (let attempt = 0; attempt < 40; attempt++) {
      const cap = Math.min(10_000, 250 * 2 ** attempt);
      expect(backoffDelay(attempt, opts, () => 0)).to.equal(0);
      const high = backoffDelay(attempt, opts, () => 0.9999999);
      expect(high)
        .to.be.at.most(cap)
        .and.at.least(cap - 1);
      expect(backoffDelay(attempt, opts, () => 0.5)).to.equal(Math.floor(cap / 2));
    }
    // a broken random source cannot escape the bounds
    expect(backoffDelay(3, opts, () => 7)).to.equal(2_000);
    expect(backoffDelay(3, opts, () => -1)).to.equal(0);
  });

  it('obeys a control reconnect frame and close 1012: reconnects after afterMs + jitter', async () => {
    const server = await h.server();
    const client = h.client(server, {
      reconnect: { baseMs: 10, maxMs: 40, drainJitterMs: 20 },
      random: () => 0.5,
    });
    const scheduled: Reconnecting[] = [];
    client.on('reconnecting', (r) => scheduled.push(r));
    await client.connect();
    const room = await client.join('general');
    server.sendControl({ kind: 'reconnect', reason: 'drain', afterMs: 60 });
    await sleep(10);
    server.closeAll(1012, 'Service Restart');
    await waitFor(() => server.requestsTo('chat.join').length === 2, 'the rejoin');
    await waitFor(() => room.state === 'joined', 'joined again');
    expect(scheduled).to.have.length(1);
    expect(scheduled[0]!.code).to.equal(1012);
    // afterMs 60 + jitter 0.5·20 = 70 from the control frame, minus the time already waited
    expect(scheduled[0]!.delayMs).to.be.within(1, 70);
    expect(scheduled[0]!.attempt).to.equal(0);
  });

  it("takes the server's jitterMs over its own drainJitterMs (a draining node spreads by itself)", async () => {
    const server = await h.server();
    const client = h.client(server, {
      reconnect: { baseMs: 10, maxMs: 40, drainJitterMs: 5_000 },
      random: () => 0.99,
    });
    const scheduled: Reconnecting[] = [];
    client.on('reconnecting', (r) => scheduled.push(r));
    await client.connect();
    const room = await client.join('general');
    server.sendControl({ kind: 'reconnect', reason: 'drain', afterMs: 30, jitterMs: 0 });
    await sleep(10);
    server.closeAll(1012, 'Service Restart');
    await waitFor(() => room.state === 'joined' && server.requestsTo('chat.join').length === 2, 'the rejoin');
    expect(scheduled).to.have.length(1);
    // afterMs 30 and no jitter (its own would have added 0.99·5,000)
    expect(scheduled[0]!.delayMs).to.be.within(0, 30);
  });

  it('leaves by itself after a control reconnect frame if the server does not close', async () => {
    const server = await h.server();
    const client = h.client(server, { random: () => 0 });
    const disconnects: ClientEvents['disconnected'][] = [];
    client.on('disconnected', (d) => disconnects.push(d));
    await client.connect();
    await client.join('general');
    server.sendControl({ kind: 'reconnect', reason: 'drain', afterMs: 20 });
    await waitFor(() => server.requestsTo('chat.join').length === 2, 'the rejoin');
    expect(disconnects[0]!.code).to.equal(1012);
    expect(server.connections).to.have.length(2);
  });

  it('close 1012 without a control frame reconnects within the drain jitter', async () => {
    const server = await h.server();
    const client = h.client(server, { reconnect: { baseMs: 1_000, maxMs: 5_000, drainJitterMs: 30 } });
    const scheduled: Reconnecting[] = [];
    client.on('reconnecting', (r) => scheduled.push(r));
    await client.connect();
    server.closeAll(1012, 'Service Restart');
    await waitFor(() => server.connections.length === 2 && client.state === 'open', 'reconnected');
    expect(scheduled[0]!.delayMs).to.be.within(0, 30);
  });

  it('a connection refused with 1012 (node draining) is retried within the drain jitter three times, then backs off', async () => {
    const server = await h.server();
    server.refuseWith = 1012;
    const client = h.client(server, {
      reconnect: { baseMs: 100, maxMs: 5_000, drainJitterMs: 20 },
      random: () => 0.999,
    });
    const scheduled: Reconnecting[] = [];
    client.on('reconnecting', (r) => scheduled.push(r));
    const connected = client.connect();
    await waitFor(() => scheduled.length >= 4, 'four refused attempts', 10_000);
    server.refuseWith = undefined;
    await connected;
    expect(scheduled.slice(0, 4).map((r) => r.code)).to.deep.equal([1012, 1012, 1012, 1012]);
    // the first three within the drain jitter (0.999·20), the fourth on the backoff (0.999·100·2^3)
    expect(scheduled.slice(0, 3).map((r) => r.delayMs)).to.deep.equal([19, 19, 19]);
    expect(scheduled[3]!.delayMs).to.equal(Math.floor(0.999 * 800));
  });

  it('reconnects after an idle close (4000)', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    await client.join('general');
    server.closeAll(4000, 'idle');
    await waitFor(() => server.requestsTo('chat.join').length === 2, 'the rejoin');
  });

  it('stops on close 1008 (bad token): connect() rejects, no reconnection', async () => {
    const server = await h.server();
    server.token = 'secret';
    const client = h.client(server, { token: 'wrong' });
    const errors: ChatError[] = [];
    client.on('error', (e) => errors.push(e));
    const err = await client.connect().catch((e: unknown) => e);
    expect(ChatError.is(err, 'AUTH', 1008), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('auth_error');
    expect(client.state).to.equal('closed');
    await sleep(100);
    expect(server.connections).to.have.length(1);
    expect(errors.some((e) => e.failureType === 'AUTH')).to.equal(true);
  });

  it('after a 1008 on an open connection, stops; connect() with a fresh token resumes the rooms', async () => {
    const server = await h.server();
    server.token = 't1';
    let token = 't1';
    const client = h.client(server, { token: () => token });
    const states: ConnectionState[] = [];
    client.on('state', (s) => states.push(s));
    await client.connect();
    const room = await client.join('general');
    server.token = 't2';
    server.closeAll(1008, 'token expired');
    await waitFor(() => client.state === 'closed', 'closed');
    await sleep(80);
    expect(server.connections).to.have.length(1);
    server.store('general', 'while away');
    token = 't2';
    await client.connect();
    await waitFor(() => room.messages.length === 1, 'the replay');
    expect(server.connections.at(-1)!.token).to.equal('t2');
    expect(server.requestsTo('chat.join').at(-1)!.body.since).to.equal(0);
    expect(states).to.deep.equal(['connecting', 'open', 'closed', 'connecting', 'open']);
  });

  it('a normal close from the server (1000) does not reconnect', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    server.closeAll(1000, 'bye');
    await waitFor(() => client.state === 'closed', 'closed');
    await sleep(80);
    expect(server.connections).to.have.length(1);
  });

  it('client.close() does not reconnect', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    await client.join('general');
    await client.close();
    expect(client.state).to.equal('closed');
    await sleep(80);
    expect(server.connections).to.have.length(1);
    expect(server.sockets.size).to.equal(0);
  });

  it('heartbeat: a silent server (no pong, nothing sent) is detected and the client reconnects', async () => {
    const server = await h.server();
    const client = h.client(server, { heartbeatMs: 40 });
    const disconnects: ClientEvents['disconnected'][] = [];
    client.on('disconnected', (d) => {
      disconnects.push(d);
      server.silent = false; // the next connection reaches a healthy node
    });
    await client.connect();
    const room = await client.join('general');
    await sleep(100); // pings are answered: the link stays up
    expect(disconnects).to.have.length(0);
    expect(server.received.some((r) => r.frame.type === 'ping')).to.equal(true);
    server.silent = true;
    await waitFor(() => disconnects.length === 1, 'dead link detected');
    expect(disconnects[0]!.reason).to.match(/heartbeat/);
    await waitFor(() => room.state === 'joined' && server.requestsTo('chat.join').length === 2, 'the rejoin');
  });

  it('reconnects when the server is down at first and comes back (connect() waits)', async () => {
    const server = await h.server();
    server.refuseWith = 1013;
    const client = h.client(server);
    const p = client.connect();
    await waitFor(() => server.connections.length >= 3, 'three attempts');
    expect(client.state).to.equal('connecting');
    server.refuseWith = undefined;
    await p;
    expect(client.state).to.equal('open');
  });
});
