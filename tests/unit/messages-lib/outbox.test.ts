import { expect } from 'chai';
import {
  ChatError,
  type ChatMessage,
  type FetchLike,
  LocalStorageOutbox,
  MemoryOutbox,
  type OutboxEntry,
  type SendAck,
  type StorageLike,
} from '../../../messages-lib/src/index.js';
import { Harness, sleep, waitFor } from './fake-server.js';

class FakeLocalStorage implements StorageLike {
  readonly data = new Map<string, string>();
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.data.set(key, String(value));
  }
  removeItem(key: string): void {
    this.data.delete(key);
  }
}

function entry(over: Partial<OutboxEntry> & { clientMsgId: string }): OutboxEntry {
  return { room: 'general', user: 'ana', text: over.clientMsgId, createdAt: 1, ...over };
}

describe('messages-lib: outbox', () => {
  const h = new Harness();
  afterEach(() => h.closeAll());

  it('resends with the same clientMsgId after a drop mid-request; the server stores it once', async () => {
    const server = await h.server();
    let first = true;
    server.intercept = (req) => {
      if (req.address === 'chat.send' && first) {
        first = false;
        return { kind: 'terminate-after' }; // stored and published, the ack is lost with the socket
      }
      return undefined;
    };
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    const seen: ChatMessage[] = [];
    room.on('message', (m) => seen.push(m));
    const ack = await room.send('once');
    const sends = server.requestsTo('chat.send');
    expect(sends).to.have.length(2);
    expect(sends[0]!.body.clientMsgId).to.equal(sends[1]!.body.clientMsgId);
    expect(sends[0]!.socket).to.not.equal(sends[1]!.socket);
    // on the new socket the resend waits for the rejoin
    const onSecond = server.requests.filter((r) => r.socket === sends[1]!.socket).map((r) => r.address);
    expect(onSecond.slice(0, 2)).to.deep.equal(['chat.join', 'chat.send']);
    expect(server.messages('general')).to.have.length(1);
    expect(ack.seq).to.equal(1);
    await waitFor(() => seen.length === 1, 'the message');
    await sleep(50);
    expect(seen.map((m) => m.text)).to.deep.equal(['once']);
    expect(room.pending).to.have.length(0);
  });

  it('retries on TIMEOUT, NO_HANDLERS and 503 with the same clientMsgId, on the same connection', async () => {
    const server = await h.server();
    const failures = [
      { kind: 'ignore' as const },
      { kind: 'fail' as const, failureType: 'NO_HANDLERS' as const, code: -1 },
      { kind: 'fail' as const, failureType: 'RECIPIENT_FAILURE' as const, code: 503, message: 'store down' },
    ];
    server.intercept = (req) => (req.address === 'chat.send' ? failures.shift() : undefined);
    const client = h.client(server, { requestTimeoutMs: 100 });
    await client.connect();
    const room = await client.join('general');
    const ids: string[] = [];
    const original = server.intercept;
    server.intercept = (req) => {
      if (req.address === 'chat.send') ids.push(req.body.clientMsgId as string);
      return original(req);
    };
    const ack = await room.send('persistent');
    expect(ack.seq).to.equal(1);
    expect(ids).to.have.length(4);
    expect(new Set(ids).size).to.equal(1);
    expect(server.connections).to.have.length(1);
    expect(server.messages('general').map((m) => m.text)).to.deep.equal(['persistent']);
  });

  it('a send refused as busy is retried when the server says its store is back, not at the end of its backoff', async () => {
    const server = await h.server();
    const ids: string[] = [];
    server.intercept = (req) => {
      if (req.address !== 'chat.send') return undefined;
      ids.push(req.body.clientMsgId as string);
      return ids.length === 1
        ? { kind: 'fail', failureType: 'RECIPIENT_FAILURE', code: 503, message: 'message store busy: down' }
        : undefined;
    };
    // A backoff of about a minute: only the server's notice can bring the retry within the test.
    const client = h.client(server, { reconnect: { baseMs: 60_000, maxMs: 60_000 }, random: () => 0.99 });
    await client.connect();
    const room = await client.join('general');
    const ack = room.send('after the outage');
    await waitFor(() => ids.length === 1, 'the refusal');
    await sleep(50);
    expect(ids, 'retried before the notice').to.have.length(1);
    server.sendControl({ kind: 'retry', reason: 'store available', jitterMs: 100 });
    expect((await ack).seq).to.equal(1);
    expect(ids).to.have.length(2);
    expect(ids[1]).to.equal(ids[0]);
    // A notice with nothing waiting changes nothing.
    server.sendControl({ kind: 'retry', reason: 'store available', jitterMs: 0 });
    await sleep(50);
    expect(ids).to.have.length(2);
    expect(server.messages('general').map((m) => m.text)).to.deep.equal(['after the outage']);
  });

  it('after the store-back notice, a send that was still out and then fails starts its backoff over', async () => {
    const server = await h.server();
    const busy = {
      kind: 'fail' as const,
      failureType: 'RECIPIENT_FAILURE' as const,
      code: 503,
      message: 'message store busy: down',
    };
    let sends = 0;
    server.intercept = (req) => {
      if (req.address !== 'chat.send') return undefined;
      sends++;
      if (sends <= 4) return busy; // the outage: the backoff grows
      if (sends === 5) return { kind: 'ignore' }; // out when the notice comes, then times out
      return undefined;
    };
    let noticed = false;
    // No wait while the backoff grows; then the longest wait each attempt allows.
    const client = h.client(server, {
      reconnect: { baseMs: 1_000, maxMs: 60_000 },
      requestTimeoutMs: 300,
      random: () => (noticed ? 0.99 : 0),
    });
    await client.connect();
    const room = await client.join('general');
    const ack = room.send('caught in the return');
    await waitFor(() => sends === 5, 'the fifth attempt, out');
    noticed = true;
    server.sendControl({ kind: 'retry', reason: 'store available', jitterMs: 0 });
    // Timed out, then retried after at most one base delay (1 s), not after 5 attempts' (32 s).
    expect((await ack).seq).to.equal(1);
    expect(sends).to.equal(6);
  });

  it('rejects a 4xx refusal with a typed error, without retrying, and goes on with the next message', async () => {
    const server = await h.server();
    const storage = new MemoryOutbox();
    const client = h.client(server, { outbox: storage });
    await client.connect();
    const room = await client.join('general');
    const failed: ChatError[] = [];
    room.on('sendFailed', ({ error }) => failed.push(error));
    const tooLong = room.send('x'.repeat(4_001)).catch((e: unknown) => e);
    const next = room.send('fine');
    const err = await tooLong;
    expect(ChatError.is(err, 'RECIPIENT_FAILURE', 400), String(err)).to.equal(true);
    expect((err as ChatError).message).to.match(/text/);
    expect((await next).seq).to.equal(1);
    await sleep(50);
    expect(server.requestsTo('chat.send')).to.have.length(2);
    expect(failed).to.have.length(1);
    expect(storage.load()).to.deep.equal([]);
  });

  it('sends in order with one request in flight per room', async () => {
    const server = await h.server();
    let held = true;
    server.intercept = (req) => (req.address === 'chat.send' && held ? { kind: 'ignore' } : undefined);
    const client = h.client(server, { requestTimeoutMs: 150 });
    await client.connect();
    const room = await client.join('general');
    const acks = ['a', 'b', 'c'].map((t) => room.send(t));
    expect(room.pending.map((e) => e.text)).to.deep.equal(['a', 'b', 'c']);
    await sleep(60);
    expect(server.received.filter((r) => r.frame.address === 'chat.send')).to.have.length(1);
    held = false;
    const done: SendAck[] = await Promise.all(acks);
    expect(done.map((a) => a.seq)).to.deep.equal([1, 2, 3]);
    expect(server.messages('general').map((m) => m.text)).to.deep.equal(['a', 'b', 'c']);
    expect(room.pending).to.have.length(0);
  });

  it('keeps messages sent while offline and sends them, in order, after the rejoin', async () => {
    const server = await h.server();
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    server.refuseWith = 1013;
    server.terminateAll();
    await waitFor(() => client.state !== 'open', 'offline');
    const acks = [room.send('one'), room.send('two')];
    const pendingSeen: number[] = [];
    room.on('pending', (p) => pendingSeen.push(p.length));
    expect(room.pending.map((e) => e.text)).to.deep.equal(['one', 'two']);
    await sleep(40);
    server.refuseWith = undefined;
    const results = await Promise.all(acks);
    expect(results.map((a) => a.seq)).to.deep.equal([1, 2]);
    expect(server.messages('general').map((m) => m.text)).to.deep.equal(['one', 'two']);
    expect(pendingSeen.at(-1)).to.equal(0);
  });

  it('resends the entries found in the storage after the first join of their room', async () => {
    const server = await h.server();
    const storage = new MemoryOutbox();
    storage.put(entry({ clientMsgId: 'later', createdAt: 20 }));
    storage.put(entry({ clientMsgId: 'earlier', createdAt: 10 }));
    storage.put(entry({ clientMsgId: 'other-room', room: 'random' }));
    storage.put(entry({ clientMsgId: 'other-user', user: 'bob' }));
    // one of them the server already has (its ack was lost before the reload)
    server.store('general', 'earlier', 'ana', 'earlier');
    const client = h.client(server, { outbox: storage });
    await client.connect();
    const room = await client.join('general');
    const sent: string[] = [];
    room.on('sent', ({ entry }) => sent.push(entry.clientMsgId));
    await waitFor(() => sent.length === 2, 'both resent');
    expect(sent).to.deep.equal(['earlier', 'later']);
    expect(server.requestsTo('chat.send').map((r) => r.body.clientMsgId)).to.deep.equal(['earlier', 'later']);
    expect(server.messages('general').map((m) => m.clientMsgId)).to.deep.equal(['earlier', 'later']);
    expect(
      storage
        .load()
        .map((e) => e.clientMsgId)
        .sort(),
    ).to.deep.equal(['other-room', 'other-user']);
    const random = await client.join('random');
    await waitFor(() => random.pending.length === 0, 'the other room sent');
    expect(server.messages('random').map((m) => m.clientMsgId)).to.deep.equal(['other-room']);
  });

  it('LocalStorageOutbox keeps unacked messages across a "reload" and they are sent by the next client', async () => {
    const server = await h.server();
    const ls = new FakeLocalStorage();
    server.intercept = (req) => (req.address === 'chat.send' ? { kind: 'ignore' } : undefined);
    const first = h.client(server, { outbox: new LocalStorageOutbox('sb.outbox', ls) });
    await first.connect();
    const room = await first.join('general');
    const lost = room.send('survives').catch((e: unknown) => e);
    await waitFor(() => server.received.some((r) => r.frame.address === 'chat.send'), 'first attempt');
    const raw = JSON.parse(ls.getItem('sb.outbox')!) as OutboxEntry[];
    expect(raw).to.have.length(1);
    expect(raw[0]).to.include({ room: 'general', user: 'ana', text: 'survives' });
    await first.close();
    expect(ChatError.is(await lost, 'CLOSED')).to.equal(true);
    expect(JSON.parse(ls.getItem('sb.outbox')!)).to.have.length(1); // still there

    server.intercept = undefined;
    const second = h.client(server, { outbox: new LocalStorageOutbox('sb.outbox', ls) });
    await second.connect();
    const again = await second.join('general');
    await waitFor(() => again.pending.length === 0 && server.messages('general').length === 1, 'resent');
    expect(server.messages('general')[0]!.clientMsgId).to.equal(raw[0]!.clientMsgId);
    expect(ls.getItem('sb.outbox')).to.equal(null);
  });

  it('LocalStorageOutbox: put, remove, load, and a corrupt value', () => {
    const ls = new FakeLocalStorage();
    const box = new LocalStorageOutbox('k', ls);
    expect(box.load()).to.deep.equal([]);
    box.put(entry({ clientMsgId: 'a' }));
    box.put(entry({ clientMsgId: 'b' }));
    box.put(entry({ clientMsgId: 'a', text: 'replaced' }));
    expect(box.load().map((e) => [e.clientMsgId, e.text])).to.deep.equal([
      ['b', 'b'],
      ['a', 'replaced'],
    ]);
    box.remove('b');
    expect(box.load().map((e) => e.clientMsgId)).to.deep.equal(['a']);
    // another tab's write is not lost: every operation reads first
    new LocalStorageOutbox('k', ls).put(entry({ clientMsgId: 'c' }));
    box.remove('a');
    expect(box.load().map((e) => e.clientMsgId)).to.deep.equal(['c']);
    ls.setItem('k', '{not json');
    expect(box.load()).to.deep.equal([]);
    ls.setItem('k', JSON.stringify([{ junk: true }, entry({ clientMsgId: 'ok' })]));
    expect(box.load().map((e) => e.clientMsgId)).to.deep.equal(['ok']);
    expect(() => new LocalStorageOutbox('k')).to.throw(/localStorage/);
  });

  it('sendFile uploads multipart to /files, then sends a message referencing the file', async () => {
    const server = await h.server();
    const calls: { url: string; method: string; headers: Record<string, string>; file: File }[] = [];
    const fakeFetch: FetchLike = async (url, init) => {
      calls.push({ url, method: init.method, headers: init.headers, file: init.body.get('file') as File });
      return {
        ok: true,
        status: 201,
        json: async () => ({ id: 'f1', name: 'a.png', size: 3, contentType: 'image/png' }),
      };
    };
    const client = h.client(server, { fetch: fakeFetch });
    await client.connect();
    const room = await client.join('general');
    const seen: ChatMessage[] = [];
    room.on('message', (m) => seen.push(m));
    const ack = await room.sendFile(new Uint8Array([1, 2, 3]), 'a.png', 'image/png', { text: 'look' });
    expect(ack.seq).to.equal(1);
    expect(calls).to.have.length(1);
    expect(calls[0]!.url).to.equal(`${server.url}/files`);
    expect(calls[0]!.method).to.equal('POST');
    expect(calls[0]!.headers).to.deep.equal({});
    expect(calls[0]!.file.name).to.equal('a.png');
    expect(calls[0]!.file.type).to.equal('image/png');
    expect([...new Uint8Array(await calls[0]!.file.arrayBuffer())]).to.deep.equal([1, 2, 3]);
    const send = server.requestsTo('chat.send')[0]!;
    expect(send.body.file).to.deep.equal({ id: 'f1' });
    expect(send.body.text).to.equal('look');
    await waitFor(() => seen.length === 1, 'the file message');
    expect(seen[0]!.file).to.include({ id: 'f1' });
  });

  it('sendFile: a refused upload rejects with ChatError UPLOAD and the status; the token goes as a bearer', async () => {
    const server = await h.server();
    let auth: string | undefined;
    const fakeFetch: FetchLike = async (_url, init) => {
      auth = init.headers.authorization;
      return {
        ok: false,
        status: 413,
        json: async () => ({ error: 'file_too_large', message: 'the limit is 10 bytes', limit: 10 }),
      };
    };
    const client = h.client(server, { fetch: fakeFetch, token: 'jwt' });
    await client.connect();
    const room = await client.join('general');
    const err = await room.sendFile(new Blob(['0123456789ab']), 'big.bin').catch((e: unknown) => e);
    expect(ChatError.is(err, 'UPLOAD', 413), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('file_too_large');
    expect(auth).to.equal('Bearer jwt');
    expect(server.requestsTo('chat.send')).to.have.length(0);
    expect(room.pending).to.have.length(0);
  });
});
