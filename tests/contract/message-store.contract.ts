/**
 * The MessageStore contract: one mocha suite every implementation passes.
 *
 *   describeMessageStoreContract('embedded', async () => ({ store, reopen, cleanup }));
 *
 * The factory gives an open store on fresh, empty storage; `reopen()` returns a new open store on
 * the same storage (the test closes the old one first); `cleanup()` closes every store the fixture
 * made and removes the storage. `describeSharedStoreContract` adds the multi-node cases for stores
 * that several processes share (two instances on one database stand for two nodes).
 */
import { expect } from 'chai';
import { StoreError } from '../../backend/src/store/types.js';
import type { AppendInput, AppendResult, ChatMessage, MessageStore } from '../../backend/src/store/types.js';

export interface StoreFixture {
  store: MessageStore;
  reopen(): Promise<MessageStore>;
  cleanup(): Promise<void>;
}

export interface SharedStoreFixture {
  /** Two open stores on the same storage, as two nodes would have. */
  stores: [MessageStore, MessageStore];
  cleanup(): Promise<void>;
}

const SUITE_TIMEOUT_MS = 60_000;
const MESSAGE_KEYS = ['clientMsgId', 'file', 'id', 'room', 'seq', 'text', 'ts', 'user'];

let counter = 0;
function input(room: string, extra: Partial<AppendInput> = {}): AppendInput {
  counter += 1;
  return { room, user: 'alice', clientMsgId: `c-${counter}`, text: `message ${counter}`, ...extra };
}

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  try {
    await promise;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(StoreError);
    return err as StoreError;
  }
  expect.fail('expected a StoreError, but the call succeeded');
}

function seqs(messages: ChatMessage[]): number[] {
  return messages.map((m) => m.seq);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** The whole room, paging forward through history. */
async function everything(store: MessageStore, room: string): Promise<ChatMessage[]> {
  const all: ChatMessage[] = [];
  for (let page = 0; page < 1000; page++) {
    const next = await store.history(room, { afterSeq: all.at(-1)?.seq ?? 0, limit: 200 });
    if (next.length === 0) return all;
    all.push(...next);
  }
  throw new Error('history did not end');
}

function bySeq(results: AppendResult[]): ChatMessage[] {
  return results.map((r) => r.message).sort((a, b) => a.seq - b.seq);
}

export function describeMessageStoreContract(name: string, factory: () => Promise<StoreFixture>): void {
  describe(`MessageStore contract: ${name}`, function () {
    this.timeout(SUITE_TIMEOUT_MS);
    let fx: StoreFixture;
    let store: MessageStore;

    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    it('is healthy once open', () => {
      expect(store.isHealthy()).to.equal(true);
    });

    it('keeps its epoch across a reopen; fresh storage has another', async () => {
      const epoch = store.epoch();
      expect(epoch).to.be.a('string').and.have.length.greaterThan(8);
      await store.close();
      expect((await fx.reopen()).epoch()).to.equal(epoch);
      const other = await factory();
      try {
        expect(other.store.epoch()).to.be.a('string').and.not.equal(epoch);
      } finally {
        await other.cleanup();
      }
    });

    it('starts seq at 1 in every room, dense and independent per room', async () => {
      const rooms = ['a', 'a!b', 'a!', 'ä', 'b'];
      for (let round = 0; round < 3; round++) {
        for (const room of rooms) await store.append(input(room));
      }
      for (const room of rooms) {
        expect(seqs(await everything(store, room)), room).to.deep.equal([1, 2, 3]);
        expect(await store.lastSeq(room), room).to.equal(3);
      }
      expect(await store.lastSeq('nobody-here')).to.equal(0);
      expect(await store.history('nobody-here', { limit: 10 })).to.deep.equal([]);
      expect(await store.latest('nobody-here', 10)).to.deep.equal([]);
    });

    it('returns the stored message with a server id and time', async () => {
      const before = Date.now();
      const a = await store.append({ room: 'r', user: 'alice', clientMsgId: 'x1', text: 'hello' });
      const b = await store.append({ room: 'r', user: 'bob', clientMsgId: 'x2', text: 'hi' });
      const after = Date.now();
      expect(a.duplicate).to.equal(false);
      expect(a.message).to.include({ room: 'r', seq: 1, user: 'alice', clientMsgId: 'x1', text: 'hello' });
      expect(b.message).to.include({ room: 'r', seq: 2, user: 'bob', clientMsgId: 'x2', text: 'hi' });
      for (const m of [a.message, b.message]) {
        expect(m.id).to.be.a('string').with.length.greaterThan(0);
        expect(m.ts).to.be.a('number').within(before, after);
        expect(
          Object.keys(m).every((k) => MESSAGE_KEYS.includes(k)),
          Object.keys(m).join(),
        ).to.equal(true);
      }
      expect(a.message.id).to.not.equal(b.message.id);
      expect(await store.history('r', { limit: 10 })).to.deep.equal([a.message, b.message]);
    });

    it('is idempotent by (room, clientMsgId)', async () => {
      const first = await store.append({ room: 'r', user: 'alice', clientMsgId: 'same', text: 'one' });
      await store.append(input('r'));
      const again = await store.append({ room: 'r', user: 'alice', clientMsgId: 'same', text: 'one' });
      expect(again).to.deep.equal({ message: first.message, duplicate: true });
      // The first ack wins even if a retry carries different content.
      const changed = await store.append({ room: 'r', user: 'alice', clientMsgId: 'same', text: 'two' });
      expect(changed).to.deep.equal({ message: first.message, duplicate: true });
      expect(await store.lastSeq('r')).to.equal(2);
      expect(await everything(store, 'r')).to.have.length(2);
      // The same clientMsgId in another room is another message.
      const other = await store.append({ room: 'r2', user: 'alice', clientMsgId: 'same', text: 'one' });
      expect(other.duplicate).to.equal(false);
      expect(other.message.seq).to.equal(1);
    });

    it('stores 50 concurrent appends of one clientMsgId once', async () => {
      await store.append(input('r'));
      const results = await Promise.all(
        range(1, 50).map(() =>
          store.append({ room: 'r', user: 'alice', clientMsgId: 'burst', text: 'once' }),
        ),
      );
      expect(results.filter((r) => !r.duplicate)).to.have.length(1);
      const ids = new Set(results.map((r) => r.message.id));
      expect(ids.size).to.equal(1);
      for (const r of results) expect(r.message).to.deep.equal(results[0]!.message);
      expect(results[0]!.message.seq).to.equal(2);
      expect(seqs(await everything(store, 'r'))).to.deep.equal([1, 2]);
    });

    it('sorts out retries mixed into a burst: stored ones, repeats within it, and new ones', async () => {
      const old = await Promise.all(
        range(1, 5).map((i) => store.append(input('mix', { clientMsgId: `old-${i}` }))),
      );
      const burst = await Promise.all([
        ...range(1, 10).map((i) => store.append(input('mix', { clientMsgId: `new-${i}` }))),
        ...range(1, 5).map((i) => store.append(input('mix', { clientMsgId: `old-${i}` }))),
        ...range(1, 3).map((i) => store.append(input('mix', { clientMsgId: `new-${i}` }))),
      ]);
      expect(burst.slice(0, 10).every((r) => !r.duplicate)).to.equal(true);
      expect(burst.slice(10).every((r) => r.duplicate)).to.equal(true);
      expect(burst.slice(10, 15).map((r) => r.message)).to.deep.equal(old.map((r) => r.message));
      expect(burst.slice(15).map((r) => r.message)).to.deep.equal(burst.slice(0, 3).map((r) => r.message));
      expect(seqs(await everything(store, 'mix'))).to.deep.equal(range(1, 15));
    });

    it('gives 500 concurrent appends to one room exactly the seqs 1..500, and history matches the acks', async () => {
      const results = await Promise.all(
        range(1, 500).map((i) => store.append(input('busy', { user: `u${i}` }))),
      );
      expect(results.every((r) => !r.duplicate)).to.equal(true);
      const acked = bySeq(results);
      expect(seqs(acked)).to.deep.equal(range(1, 500));
      expect(await everything(store, 'busy')).to.deep.equal(acked);
      expect(await store.lastSeq('busy')).to.equal(500);
    });

    it('serves history with afterSeq, beforeSeq and limit, oldest first', async () => {
      for (let i = 0; i < 10; i++) await store.append(input('h'));
      const h = (q: { afterSeq?: number; beforeSeq?: number; limit: number }) =>
        store.history('h', q).then(seqs);
      expect(await h({ limit: 3 })).to.deep.equal([1, 2, 3]);
      expect(await h({ limit: 100 })).to.deep.equal(range(1, 10));
      expect(await h({ afterSeq: 0, limit: 2 })).to.deep.equal([1, 2]);
      expect(await h({ afterSeq: 3, limit: 4 })).to.deep.equal([4, 5, 6, 7]);
      expect(await h({ afterSeq: 8, limit: 10 })).to.deep.equal([9, 10]);
      expect(await h({ afterSeq: 10, limit: 10 })).to.deep.equal([]);
      expect(await h({ afterSeq: 99, limit: 10 })).to.deep.equal([]);
      // beforeSeq alone pages back: the newest `limit` below it.
      expect(await h({ beforeSeq: 5, limit: 2 })).to.deep.equal([3, 4]);
      expect(await h({ beforeSeq: 5, limit: 10 })).to.deep.equal([1, 2, 3, 4]);
      expect(await h({ beforeSeq: 1, limit: 10 })).to.deep.equal([]);
      expect(await h({ beforeSeq: 99, limit: 3 })).to.deep.equal([8, 9, 10]);
      // Both: the window between them, oldest first.
      expect(await h({ afterSeq: 2, beforeSeq: 6, limit: 10 })).to.deep.equal([3, 4, 5]);
      expect(await h({ afterSeq: 2, beforeSeq: 6, limit: 2 })).to.deep.equal([3, 4]);
      expect(await h({ afterSeq: 6, beforeSeq: 6, limit: 2 })).to.deep.equal([]);
    });

    it('returns the newest messages from latest(), oldest first', async () => {
      for (let i = 0; i < 10; i++) await store.append(input('l'));
      expect(seqs(await store.latest('l', 3))).to.deep.equal([8, 9, 10]);
      expect(seqs(await store.latest('l', 1))).to.deep.equal([10]);
      expect(seqs(await store.latest('l', 1000))).to.deep.equal(range(1, 10));
      expect(await store.latest('l', 2)).to.deep.equal(await store.history('l', { afterSeq: 8, limit: 2 }));
    });

    it('reports lastSeq per room', async () => {
      expect(await store.lastSeq('x')).to.equal(0);
      await store.append(input('x'));
      await store.append(input('y'));
      await store.append(input('x'));
      expect(await store.lastSeq('x')).to.equal(2);
      expect(await store.lastSeq('y')).to.equal(1);
    });

    it('keeps messages, seqs and idempotency across a reopen', async () => {
      const first = await store.append({ room: 'p', user: 'alice', clientMsgId: 'keep', text: 'persist me' });
      await store.append(input('p'));
      await store.append(input('p'));
      const before = await everything(store, 'p');
      await store.close();
      const reopened = await fx.reopen();
      expect(reopened.isHealthy()).to.equal(true);
      expect(await reopened.lastSeq('p')).to.equal(3);
      expect(await everything(reopened, 'p')).to.deep.equal(before);
      const retry = await reopened.append({
        room: 'p',
        user: 'alice',
        clientMsgId: 'keep',
        text: 'persist me',
      });
      expect(retry).to.deep.equal({ message: first.message, duplicate: true });
      const next = await reopened.append(input('p'));
      expect(next.message.seq).to.equal(4);
      expect(next.message.id).to.not.be.oneOf(before.map((m) => m.id));
    });

    it('settles and keeps appends accepted before close()', async () => {
      const pending = range(1, 20).map(() => store.append(input('c')));
      await store.close();
      const results = await Promise.all(pending);
      expect(seqs(bySeq(results))).to.deep.equal(range(1, 20));
      const reopened = await fx.reopen();
      expect(await everything(reopened, 'c')).to.deep.equal(bySeq(results));
    });

    it('flush() resolves once every accepted append has settled', async () => {
      let settled = 0;
      const pending = range(1, 30).map(() => store.append(input('f')).then(() => settled++));
      await store.flush();
      expect(settled).to.equal(30);
      await Promise.all(pending);
      await store.flush();
    });

    it('round-trips file references', async () => {
      const file = { id: 'f-123', name: 'report <final>.pdf', size: 123456, contentType: 'application/pdf' };
      const onlyFile = await store.append({ room: 'files', user: 'alice', clientMsgId: 'f1', file });
      const both = await store.append({
        room: 'files',
        user: 'bob',
        clientMsgId: 'f2',
        text: 'see attached',
        file: { ...file, id: 'f-456', size: 0, extra: '$drop-me' } as typeof file,
      });
      expect(onlyFile.message.file).to.deep.equal(file);
      expect(onlyFile.message).to.not.have.property('text');
      expect(both.message.file).to.deep.equal({ ...file, id: 'f-456', size: 0 });
      const stored = await store.history('files', { limit: 10 });
      expect(stored).to.deep.equal([onlyFile.message, both.message]);
      expect(stored[1]!.file).to.not.have.property('extra');
    });

    it('keeps unicode and HTML byte-exact', async () => {
      const texts = [
        'héllo wörld',
        '日本語のテキスト',
        '😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈',
        'مرحبا بالعالم',
        '<script>alert("x")</script> &amp; &lt;b&gt; <img src=x onerror=alert(1)>',
        'line1\nline2\r\n\ttab',
        'zero\u200bwidth\ufeffbom',
        'nul\u0000char',
        '\u2028\u2029 separators',
        '  padded  ',
        'e\u0301 vs \u00e9',
        'quotes \' " ` \\ backslash',
        '{"json":true,"$where":"1"}',
        '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{10ffff}',
      ];
      const acked: ChatMessage[] = [];
      for (const [i, text] of texts.entries()) {
        acked.push(
          (await store.append({ room: 'ü 🚀 <room>', user: 'Zoë 😀', clientMsgId: `u${i}`, text })).message,
        );
      }
      const stored = await store.history('ü 🚀 <room>', { limit: 100 });
      expect(stored).to.deep.equal(acked);
      stored.forEach((m, i) => {
        expect(
          Buffer.from(m.text!, 'utf8').equals(Buffer.from(texts[i]!, 'utf8')),
          JSON.stringify(texts[i]),
        ).to.equal(true);
        expect(m.user).to.equal('Zoë 😀');
      });
    });

    it('rejects bad input with INVALID naming the field, and stores nothing', async () => {
      const bad = store as unknown as {
        append(i: unknown): Promise<unknown>;
        history(r: unknown, q: unknown): Promise<unknown>;
        latest(r: unknown, l: unknown): Promise<unknown>;
        lastSeq(r: unknown): Promise<unknown>;
      };
      const ok = { room: 'v', user: 'alice', clientMsgId: 'ok', text: 'hi' };
      const cases: Array<[string, () => Promise<unknown>]> = [
        ['append input', () => bad.append(null)],
        ['room', () => bad.append({ ...ok, room: '' })],
        ['room', () => bad.append({ ...ok, room: 42 })],
        ['room', () => bad.append({ ...ok, room: 'x'.repeat(10_000) })],
        ['clientMsgId', () => bad.append({ ...ok, clientMsgId: undefined })],
        ['clientMsgId', () => bad.append({ ...ok, clientMsgId: '' })],
        ['user', () => bad.append({ ...ok, user: undefined })],
        ['text', () => bad.append({ ...ok, text: 12 })],
        ['text', () => bad.append({ ...ok, text: 'lone \ud800 surrogate' })],
        ['text or file', () => bad.append({ ...ok, text: undefined })],
        ['file', () => bad.append({ ...ok, file: 'nope' })],
        ['file.size', () => bad.append({ ...ok, file: { id: 'f', name: 'n', size: -1, contentType: 't' } })],
        ['file.id', () => bad.append({ ...ok, file: { name: 'n', size: 1, contentType: 't' } })],
        ['room', () => bad.history('', { limit: 10 })],
        ['limit', () => bad.history('v', { limit: 0 })],
        ['limit', () => bad.history('v', { limit: -5 })],
        ['limit', () => bad.history('v', { limit: 1.5 })],
        ['limit', () => bad.history('v', { limit: 1e9 })],
        ['limit', () => bad.history('v', {})],
        ['limit', () => bad.history('v', { limit: Number.NaN })],
        ['afterSeq', () => bad.history('v', { afterSeq: -1, limit: 10 })],
        ['beforeSeq', () => bad.history('v', { beforeSeq: '3', limit: 10 })],
        ['history query', () => bad.history('v', null)],
        ['limit', () => bad.latest('v', 0)],
        ['limit', () => bad.latest('v', 1_000_000)],
        ['room', () => bad.latest(undefined, 10)],
        ['room', () => bad.lastSeq('')],
      ];
      for (const [field, call] of cases) {
        const err = await rejection(call());
        expect(err.code, `${field}: ${err.message}`).to.equal('INVALID');
        expect(err.message, field).to.include(field);
      }
      expect(await store.lastSeq('v')).to.equal(0);
      expect(store.isHealthy()).to.equal(true);
      expect((await store.append(ok)).message.seq).to.equal(1);
    });

    it('fails every operation with CLOSED after close()', async () => {
      await store.append(input('z'));
      await store.close();
      await store.close(); // closing twice is harmless
      expect(store.isHealthy()).to.equal(false);
      const calls: Array<() => Promise<unknown>> = [
        () => store.append(input('z')),
        () => store.history('z', { limit: 10 }),
        () => store.latest('z', 10),
        () => store.lastSeq('z'),
        () => store.open(),
      ];
      for (const call of calls) expect((await rejection(call())).code).to.equal('CLOSED');
      await store.flush();
    });
  });
}

export function describeSharedStoreContract(name: string, factory: () => Promise<SharedStoreFixture>): void {
  describe(`MessageStore contract, two nodes on one database: ${name}`, function () {
    this.timeout(SUITE_TIMEOUT_MS);
    let fx: SharedStoreFixture;

    beforeEach(async () => {
      fx = await factory();
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    it('gives both nodes the same epoch', () => {
      const [a, b] = fx.stores;
      expect(a.epoch()).to.be.a('string').and.equal(b.epoch());
    });

    it('gives concurrent appends from both nodes dense, unique seqs', async () => {
      const [a, b] = fx.stores;
      const results = await Promise.all(
        range(1, 300).map((i) => (i % 2 === 0 ? a : b).append(input('shared', { user: `u${i}` }))),
      );
      const acked = bySeq(results);
      expect(seqs(acked)).to.deep.equal(range(1, 300));
      expect(new Set(acked.map((m) => m.id)).size).to.equal(300);
      expect(await everything(a, 'shared')).to.deep.equal(acked);
      expect(await b.lastSeq('shared')).to.equal(300);
    });

    it('continues after the other node appended (stale seq on this node)', async () => {
      const [a, b] = fx.stores;
      for (let i = 0; i < 3; i++) await a.append(input('turns'));
      expect((await b.append(input('turns'))).message.seq).to.equal(4);
      for (let i = 0; i < 3; i++) await a.append(input('turns'));
      expect((await b.append(input('turns'))).message.seq).to.equal(8);
      expect((await a.append(input('turns'))).message.seq).to.equal(9);
      expect(seqs(await everything(b, 'turns'))).to.deep.equal(range(1, 9));
    });

    it('stores one message when the same clientMsgId arrives through both nodes', async () => {
      const [a, b] = fx.stores;
      await a.append(input('dup'));
      const same = { room: 'dup', user: 'alice', clientMsgId: 'through-both', text: 'once' };
      const results = await Promise.all(
        range(1, 40).flatMap((i) => [
          (i % 2 === 0 ? a : b).append(same),
          (i % 2 === 0 ? b : a).append(input('dup')),
        ]),
      );
      const mine = results.filter((r) => r.message.clientMsgId === 'through-both');
      expect(mine).to.have.length(40);
      expect(mine.filter((r) => !r.duplicate)).to.have.length(1);
      for (const r of mine) expect(r.message).to.deep.equal(mine[0]!.message);
      const all = await everything(a, 'dup');
      expect(seqs(all)).to.deep.equal(range(1, 42));
      expect(all.filter((m) => m.clientMsgId === 'through-both')).to.have.length(1);
    });
  });
}
