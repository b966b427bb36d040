import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChatMessage, SendAck as Ack } from '@switchboard/protocol';
import type { BusNode, ReplyResult } from '../helpers/bus-nodes.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { waitFor } from '../infra/proc.js';

function ok<T>(r: ReplyResult): T {
  expect(r.ok, JSON.stringify(r)).to.equal(true);
  return r.body as T;
}

async function allHistory(node: BusNode, room: string): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  let after = 0;
  for (;;) {
    const { messages } = ok<{ messages: ChatMessage[] }>(
      await node.request('chat.history', { room, afterSeq: after, limit: 500 }),
    );
    out.push(...messages);
    if (messages.length < 500) return out;
    after = messages.at(-1)!.seq;
  }
}

/**
 * The durable chat service on the real stack: 3 backend processes on 2 Hazelcast members with
 * FerretDB (MongoDB wire protocol) as the store and one shared files directory.
 */
describe('chat service on 3 clustered nodes with FerretDB', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;
  const node = (i: number) => fx.nodes[i]!;

  before(async function () {
    this.timeout(300_000);
    fx = await ClusterFixture.start({
      nodes: 3,
      env: { CHAT_JOIN_MAX: '100', CHAT_JOIN_LATEST: '20', FILE_MAX_BYTES: String(256 * 1024) },
    });
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  after(async function () {
    this.timeout(60_000);
    await fx?.stop();
  });

  it('stores 5,000 messages from 20 concurrent senders over 3 nodes with seqs 1..N, no gaps, no repeats', async () => {
    const room = 'load';
    const senders = 20;
    const perSender = 250;
    const acks: { clientMsgId: string; ack: Ack }[] = [];
    await Promise.all(
      Array.from({ length: senders }, async (_, s) => {
        const via = node(s % 3);
        for (let i = 0; i < perSender; i++) {
          const clientMsgId = `s${s}-m${i}`;
          const r = await via.request('chat.send', {
            room,
            user: `user${s}`,
            clientMsgId,
            text: `message ${i} from ${s}`,
          });
          acks.push({ clientMsgId, ack: ok<Ack>(r) });
        }
      }),
    );
    const total = senders * perSender;
    expect(acks).to.have.length(total);
    const seqs = acks.map((a) => a.ack.seq).sort((a, b) => a - b);
    expect(seqs).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(acks.map((a) => a.ack.id)).size).to.equal(total);

    const history = await allHistory(node(1), room);
    expect(history.map((m) => m.seq)).to.deep.equal(seqs);
    const acked = new Map(acks.map((a) => [a.ack.seq, a]));
    for (const m of history) {
      const a = acked.get(m.seq)!;
      expect([m.id, m.clientMsgId]).to.deep.equal([a.ack.id, a.clientMsgId]);
    }
    // Each sender's own messages are stored in the order it sent them.
    for (let s = 0; s < senders; s++) {
      const mine = history.filter((m) => m.user === `user${s}`).map((m) => m.text);
      expect(mine).to.deep.equal(Array.from({ length: perSender }, (_, i) => `message ${i} from ${s}`));
    }
  });

  it('stores and publishes a message once however often and wherever its send is retried', async () => {
    const room = 'idem';
    for (const n of fx.nodes) await n.consumer(`chat.room.${room}`, 'record');
    await fx.waitForSubscribers(`chat.room.${room}`, fx.nodes);
    const body = { room, user: 'ana', clientMsgId: 'retry-me', text: 'only once' };
    const sequential = [];
    for (let i = 0; i < 5; i++) sequential.push(ok<Ack>(await node(i % 3).request('chat.send', body)));
    const concurrent = (
      await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          node(i % 3).request('chat.send', { ...body, clientMsgId: 'race-me' }),
        ),
      )
    ).map((r) => ok<Ack>(r));
    expect(new Set(sequential.map((a) => JSON.stringify(a))).size).to.equal(1);
    expect(new Set(concurrent.map((a) => JSON.stringify(a))).size).to.equal(1);
    const history = await allHistory(node(0), room);
    expect(history.map((m) => m.clientMsgId)).to.deep.equal(['retry-me', 'race-me']);
    for (const n of fx.nodes) {
      await waitFor(
        `${n.name} to receive 2 publishes`,
        async () => (await n.received(`chat.room.${room}`)).length >= 2,
        10_000,
      );
    }
    await new Promise((r) => setTimeout(r, 300)); // a duplicate publish would have arrived by now
    for (const n of fx.nodes) {
      const got = (await n.received(`chat.room.${room}`)) as ChatMessage[];
      expect(got.map((m) => m.clientMsgId)).to.deep.equal(['retry-me', 'race-me']);
    }
  });

  it('gives a new joiner the latest messages, and a returning one what it missed (paged when truncated)', async () => {
    const room = 'join';
    for (let i = 1; i <= 130; i++) {
      ok(await node(i % 3).request('chat.send', { room, user: 'bob', clientMsgId: `j${i}`, text: `t${i}` }));
    }
    const first = ok<{ lastSeq: number; messages: ChatMessage[]; truncated: boolean }>(
      await node(0).request('chat.join', { room, user: 'cat' }),
    );
    expect(first.lastSeq).to.equal(130);
    expect(first.messages.map((m) => m.seq)).to.deep.equal(Array.from({ length: 20 }, (_, i) => 111 + i));
    expect(first.truncated).to.equal(false);

    const back = ok<{ lastSeq: number; messages: ChatMessage[]; truncated: boolean }>(
      await node(1).request('chat.join', { room, user: 'cat', since: 120 }),
    );
    expect(back.messages.map((m) => m.seq)).to.deep.equal([121, 122, 123, 124, 125, 126, 127, 128, 129, 130]);
    expect(back.truncated).to.equal(false);

    const far = ok<{ lastSeq: number; messages: ChatMessage[]; truncated: boolean }>(
      await node(2).request('chat.join', { room, user: 'cat', since: 5 }),
    );
    expect(far.truncated).to.equal(true);
    expect(far.lastSeq).to.equal(130);
    expect(far.messages.map((m) => m.seq)).to.deep.equal(Array.from({ length: 100 }, (_, i) => 6 + i));
    const rest = ok<{ messages: ChatMessage[] }>(
      await node(0).request('chat.history', { room, afterSeq: 105, limit: 100 }),
    );
    expect(rest.messages.map((m) => m.seq)).to.deep.equal(Array.from({ length: 25 }, (_, i) => 106 + i));
    const older = ok<{ messages: ChatMessage[] }>(
      await node(0).request('chat.history', { room, beforeSeq: 11, limit: 3 }),
    );
    expect(older.messages.map((m) => m.seq)).to.deep.equal([8, 9, 10]);
  });

  it('tracks presence cluster-wide and drops the users of a node that dies', async () => {
    const room = 'presence';
    await node(0).consumer(`chat.presence.${room}`, 'record');
    await fx.waitForSubscribers(`chat.presence.${room}`, [node(0)]);
    ok(await node(0).request('chat.join', { room, user: 'ana' }));
    ok(await node(2).request('chat.join', { room, user: 'zed' }));
    const lastUsers = async () => {
      const got = (await node(0).received(`chat.presence.${room}`)) as { users: string[] }[];
      return got.at(-1)?.users.join(',');
    };
    await waitFor('presence [ana, zed]', async () => (await lastUsers()) === 'ana,zed', 10_000);
    ok(await node(1).request('chat.leave', { room, user: 'ana' }));
    await waitFor('presence [zed]', async () => (await lastUsers()) === 'zed', 10_000);
    ok(await node(0).request('chat.join', { room, user: 'ana' }));
    await waitFor('presence [ana, zed] again', async () => (await lastUsers()) === 'ana,zed', 10_000);
    // zed's connection lives on node 2 (the node that asked): kill it, and zed leaves the room.
    const victim = node(2);
    victim.proc.kill('SIGKILL');
    await victim.proc.exited;
    await waitFor('presence [ana] after the node died', async () => (await lastUsers()) === 'ana', 20_000);
    fx.nodes[2] = await fx.startNode('node-2b');
    await fx.waitForNodes(fx.nodes);
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  it('rejects bad input with a 400 naming the field and stores nothing', async () => {
    const room = 'bad';
    ok(await node(0).request('chat.send', { room, user: 'ana', clientMsgId: 'good-1', text: 'fine' }));
    const cases: [unknown, RegExp][] = [
      [{ user: 'ana', clientMsgId: 'x1', text: 'hi' }, /room/],
      [{ room, clientMsgId: 'x2', text: 'hi' }, /user/],
      [{ room, user: 'ana', text: 'hi' }, /clientMsgId/],
      [{ room, user: 'ana', clientMsgId: 'x3' }, /text or file/],
      [{ room, user: 'ana', clientMsgId: 'x4', text: '   ' }, /text or file/],
      [{ room, user: 'ana', clientMsgId: 'x5', text: 'x'.repeat(4_001) }, /text: at most 4000/],
      [{ room: '../etc', user: 'ana', clientMsgId: 'x6', text: 'hi' }, /room: 1-64 letters/],
      [{ room: 'with space', user: 'ana', clientMsgId: 'x7', text: 'hi' }, /room/],
      [{ room: 'ünïcode', user: 'ana', clientMsgId: 'x8', text: 'hi' }, /room/],
      [{ room: 'r'.repeat(65), user: 'ana', clientMsgId: 'x9', text: 'hi' }, /room/],
      [{ room, user: 'a\u0000b', clientMsgId: 'x10', text: 'hi' }, /user: no control/],
      [{ room, user: 'ana', clientMsgId: 'has space', text: 'hi' }, /clientMsgId/],
      [{ room, user: 'ana', clientMsgId: 'x11', text: 'hi', admin: true }, /unknown field/],
      [{ room, user: 'ana', clientMsgId: 'x12', text: 42 }, /text/],
      ['just a string', /body: expected a JSON object/],
      [[1, 2], /body: expected a JSON object/],
      [null, /body: expected a JSON object/],
    ];
    for (const [body, message] of cases) {
      const r = await node(1).request('chat.send', body);
      expect(r, JSON.stringify(body)).to.deep.include({
        ok: false,
        failureType: 'RECIPIENT_FAILURE',
        failureCode: 400,
      });
      expect(r.message, JSON.stringify(body)).to.match(message);
    }
    for (const body of [
      { room, afterSeq: -1, limit: 10 },
      { room, limit: 0 },
      { room, limit: 100_000 },
      { room, afterSeq: 1.5 },
    ]) {
      expect(await node(2).request('chat.history', body)).to.deep.include({ ok: false, failureCode: 400 });
    }
    expect(await node(2).request('chat.join', { room, user: 'ana', since: 'yesterday' })).to.deep.include({
      ok: false,
      failureCode: 400,
    });
    const history = await allHistory(node(2), room);
    expect(history.map((m) => m.clientMsgId)).to.deep.equal(['good-1']);
    const next = ok<Ack>(
      await node(0).request('chat.send', { room, user: 'ana', clientMsgId: 'good-2', text: 'fine' }),
    );
    expect(next.seq).to.equal(2);
  });

  it('keeps message text byte-exact, markup included', async () => {
    const text = '<script>alert("x")</script> & ünïcödé 🎉 \\n "quotes"';
    const ack = ok<Ack>(
      await node(0).request('chat.send', { room: 'exact', user: 'ana', clientMsgId: 'e1', text }),
    );
    const [m] = await allHistory(node(1), 'exact');
    expect(m).to.deep.include({ seq: ack.seq, text, user: 'ana' });
  });

  it('uploads a file on one node, serves it from another, and sends it as a message', async () => {
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    const form = new FormData();
    form.append('file', new Blob([bytes], { type: 'image/png' }), '../../etc/passwd.png');
    const up = await fetch(`${node(0).httpUrl}/files`, { method: 'POST', body: form });
    expect(up.status).to.equal(201);
    const ref = (await up.json()) as { id: string; name: string; size: number; contentType: string };
    expect(ref).to.deep.include({ name: 'passwd.png', size: bytes.length, contentType: 'image/png' });
    expect(ref.id).to.match(/^[0-9a-f-]{36}$/);

    const down = await fetch(`${node(1).httpUrl}/files/${ref.id}`);
    expect(down.status).to.equal(200);
    expect(down.headers.get('content-type')).to.equal('image/png');
    expect(down.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(Buffer.from(await down.arrayBuffer()).equals(bytes)).to.equal(true);

    const ack = ok<Ack>(
      await node(2).request('chat.send', {
        room: 'files',
        user: 'ana',
        clientMsgId: 'f1',
        file: { id: ref.id },
      }),
    );
    const [m] = await allHistory(node(0), 'files');
    expect(m).to.deep.include({ seq: ack.seq });
    expect(m!.file).to.deep.equal(ref);

    // Nothing landed outside the files directory's own layout.
    const top = await readdir(fx.filesDir);
    expect(
      top.every((name) => name === 'tmp' || /^[0-9a-f]{2}$/.test(name)),
      top.join(','),
    ).to.equal(true);
    expect(await readdir(join(fx.filesDir, 'tmp'))).to.deep.equal([]);
  });

  it('refuses bad uploads and unknown files clearly', async () => {
    const big = new FormData();
    big.append('file', new Blob([Buffer.alloc(300 * 1024, 1)]), 'big.bin');
    const tooBig = await fetch(`${node(0).httpUrl}/files`, { method: 'POST', body: big });
    expect(tooBig.status).to.equal(413);
    expect(await tooBig.json()).to.deep.include({ error: 'file_too_large', limit: 256 * 1024 });
    expect(await readdir(join(fx.filesDir, 'tmp'))).to.deep.equal([]);

    const notMultipart = await fetch(`${node(0).httpUrl}/files`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(notMultipart.status).to.equal(415);

    const wrongField = new FormData();
    wrongField.append('upload', new Blob(['x']), 'x.txt');
    expect((await fetch(`${node(0).httpUrl}/files`, { method: 'POST', body: wrongField })).status).to.equal(
      400,
    );

    expect((await fetch(`${node(0).httpUrl}/files/not-an-id`)).status).to.equal(400);
    expect((await fetch(`${node(0).httpUrl}/files/..%2F..%2Fetc%2Fpasswd`)).status).to.equal(400);
    expect((await fetch(`${node(0).httpUrl}/files/00000000-0000-4000-8000-000000000000`)).status).to.equal(
      404,
    );

    const r = await node(1).request('chat.send', {
      room: 'files',
      user: 'ana',
      clientMsgId: 'f-missing',
      file: { id: '00000000-0000-4000-8000-000000000000' },
    });
    expect(r).to.deep.include({ ok: false, failureCode: 404 });
  });

  it('continues every room where it was after all nodes restart', async () => {
    const before = ok<{ lastSeq: number }>(
      await node(0).request('chat.join', { room: 'load', user: 'ana', since: 0 }),
    );
    expect(before.lastSeq).to.equal(5_000);
    await Promise.all(fx.nodes.map((n) => n.proc.stop()));
    fx.nodes = await Promise.all([0, 1, 2].map((i) => fx.startNode(`node-${i}-restarted`)));
    await fx.waitForNodes(fx.nodes);
    await fx.waitForSubscribers('chat.send', fx.nodes);
    const ack = ok<Ack>(
      await node(1).request('chat.send', {
        room: 'load',
        user: 'ana',
        clientMsgId: 'after-restart',
        text: 'x',
      }),
    );
    expect(ack.seq).to.equal(5_001);
    // Idempotency survives the restart too.
    const again = ok<Ack>(
      await node(2).request('chat.send', {
        room: 'idem',
        user: 'ana',
        clientMsgId: 'retry-me',
        text: 'only once',
      }),
    );
    expect(again.seq).to.equal(1);
    expect((await allHistory(node(0), 'idem')).length).to.equal(2);
  });
});
