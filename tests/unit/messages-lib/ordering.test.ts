import { expect } from 'chai';
import type { ChatMessage, Room } from '../../../messages-lib/src/index.js';
import { Harness, sleep, waitFor } from './fake-server.js';

function collect(room: Room): number[] {
  const seqs: number[] = [];
  room.on('message', (m: ChatMessage) => seqs.push(m.seq));
  return seqs;
}

describe('messages-lib: ordering and gap-free replay', () => {
  const h = new Harness();
  afterEach(() => h.closeAll());

  it('delivers in seq order when the live stream is out of order (3 before 2)', async () => {
    const server = await h.server();
    const client = h.client(server, { gapFillMs: 2_000 });
    await client.connect();
    const room = await client.join('general');
    const seqs = collect(room);
    const [m1, m2, m3] = [
      server.store('general', 'a'),
      server.store('general', 'b'),
      server.store('general', 'c'),
    ];
    server.publish(m1);
    server.publish(m3);
    await waitFor(() => seqs.length === 1, 'seq 1');
    server.publish(m2);
    await waitFor(() => seqs.length === 3, 'seqs 2 and 3');
    expect(seqs).to.deep.equal([1, 2, 3]);
    expect(room.messages.map((m) => m.text)).to.deep.equal(['a', 'b', 'c']);
    // the live stream closed the gap: no history needed
    expect(server.requestsTo('chat.history')).to.have.length(0);
  });

  it('fills a gap the live stream does not close from chat.history', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    const seqs = collect(room);
    const m1 = server.store('general', 'a');
    server.store('general', 'b'); // stored, never published (its publication was lost)
    const m3 = server.store('general', 'c');
    server.publish(m1);
    server.publish(m3);
    await waitFor(() => seqs.length === 3, 'the gap filled');
    expect(seqs).to.deep.equal([1, 2, 3]);
    const history = server.requestsTo('chat.history');
    expect(history).to.have.length(1);
    expect(history[0]!.body).to.include({ room: 'general', afterSeq: 1 });
  });

  it('moves past a hole that history confirms (a seq reserved but never stored)', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    const seqs = collect(room);
    const m1 = server.store('general', 'a');
    server.skipSeq('general'); // seq 2 never exists
    const m3 = server.store('general', 'c');
    server.publish(m1);
    server.publish(m3);
    await waitFor(() => seqs.length === 2, 'seq 3 after the hole');
    expect(seqs).to.deep.equal([1, 3]);
    const m4 = server.store('general', 'd');
    server.publish(m4);
    await waitFor(() => seqs.length === 3, 'seq 4');
    expect(seqs).to.deep.equal([1, 3, 4]);
    expect(room.lastSeq).to.equal(4);
  });

  it('never delivers twice a message that arrives live and in the join reply', async () => {
    const server = await h.server();
    server.store('general', 'a');
    // The message is published after the client registered and before the join reads the store.
    server.intercept = (req) => {
      if (req.address === 'chat.join') server.publish(server.store('general', 'raced'));
      return undefined;
    };
    const client = h.client(server);
    await client.connect();
    const seen: number[] = [];
    // listen from the start: the room emits its first messages while join() resolves
    const room = await client.join('general');
    room.messages.forEach((m) => seen.push(m.seq));
    const later = collect(room);
    await sleep(80);
    expect(seen).to.deep.equal([1, 2]);
    expect(later).to.deep.equal([]);
  });

  it('never delivers twice a message that arrives live while history fills a gap', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    const seqs = collect(room);
    const m1 = server.store('general', 'a');
    const m2 = server.store('general', 'b');
    const m3 = server.store('general', 'c');
    server.intercept = (req) => {
      if (req.address === 'chat.history') server.publish(m2); // arrives live just before the reply
      return undefined;
    };
    server.publish(m1);
    server.publish(m3);
    await waitFor(() => seqs.length >= 3, 'three messages');
    await sleep(50);
    expect(seqs).to.deep.equal([1, 2, 3]);
  });

  it('catches up after a reconnect through a truncated join and history pages, each seq once', async () => {
    const server = await h.server();
    server.joinMax = 3;
    for (let i = 1; i <= 2; i++) server.store('general', `m${i}`);
    const client = h.client(server, { historyPageSize: 4 });
    const catching: { room: string; missed: number }[] = [];
    client.on('catchingUp', (c) => catching.push(c));
    await client.connect();
    const room = await client.join('general');
    const seqs = collect(room);
    server.terminateAll();
    for (let i = 3; i <= 20; i++) server.store('general', `m${i}`);
    await waitFor(() => seqs.length === 18, 'the replay');
    expect(seqs).to.deep.equal(Array.from({ length: 18 }, (_, i) => i + 3));
    expect(room.messages.map((m) => m.seq)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(catching).to.deep.equal([{ room: 'general', missed: 18 }]);
    const rejoin = server.requestsTo('chat.join')[1]!;
    expect(rejoin.body.since).to.equal(2);
    const pages = server.requestsTo('chat.history').map((r) => r.body.afterSeq);
    expect(pages).to.deep.equal([5, 9, 13, 17]);
  });

  it('first join starts at the newest messages; older ones stay history', async () => {
    const server = await h.server();
    server.joinLatest = 5;
    for (let i = 1; i <= 20; i++) server.store('general', `m${i}`);
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    expect(room.messages.map((m) => m.seq)).to.deep.equal([16, 17, 18, 19, 20]);
    expect(room.lastSeq).to.equal(20);
    expect(server.requestsTo('chat.history')).to.have.length(0);
  });

  it('join with since starts after it', async () => {
    const server = await h.server();
    for (let i = 1; i <= 6; i++) server.store('general', `m${i}`);
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general', { since: 4 });
    expect(room.messages.map((m) => m.seq)).to.deep.equal([5, 6]);
    expect(server.requestsTo('chat.join')[0]!.body.since).to.equal(4);
  });

  it('keeps a bounded list of messages', async () => {
    const server = await h.server();
    for (let i = 1; i <= 12; i++) server.store('general', `m${i}`);
    const client = h.client(server, { maxMessages: 5 });
    await client.connect();
    const room = await client.join('general');
    expect(room.messages.map((m) => m.seq)).to.deep.equal([8, 9, 10, 11, 12]);
    server.publish(server.store('general', 'm13'));
    await waitFor(() => room.lastSeq === 13, 'seq 13');
    expect(room.messages.map((m) => m.seq)).to.deep.equal([9, 10, 11, 12, 13]);
  });

  it('shuffled and partly lost live publications still give every seq once, in order', async () => {
    const server = await h.server();
    const client = h.client(server, { gapFillMs: 20 });
    await client.connect();
    const room = await client.join('general');
    const seqs = collect(room);
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const stored = Array.from({ length: 60 }, (_, i) => server.store('general', `m${i + 1}`));
    // publish in a locally shuffled order (each within a few places of its own), losing 1 in 5
    const order = stored.map((m, i) => ({ m, key: i + rand() * 6 })).sort((a, b) => a.key - b.key);
    for (const { m } of order) {
      if (rand() < 0.2) continue;
      server.publish(m);
      if (rand() < 0.1) await sleep(5);
    }
    await waitFor(() => seqs.length >= 60, 'all 60 messages');
    await sleep(50);
    expect(seqs).to.deep.equal(Array.from({ length: 60 }, (_, i) => i + 1));
  });
});
