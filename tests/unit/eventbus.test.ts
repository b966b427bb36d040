import { expect } from 'chai';
import { StandaloneClusterManager } from '../../backend/src/cluster/standalone.js';
import {
  ClusteredEventBus,
  EventBusError,
  type Message,
  ReplyException,
} from '../../backend/src/eventbus/index.js';

function newBus(opts: { defaultTimeoutMs?: number; maxBodyBytes?: number } = {}): ClusteredEventBus {
  return new ClusteredEventBus({ cluster: new StandaloneClusterManager(), ...opts });
}

async function failureOf(p: Promise<unknown>): Promise<ReplyException> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(ReplyException);
    return err as ReplyException;
  }
  throw new Error('expected the request to fail');
}

const tick = () => new Promise((r) => setImmediate(r));

describe('event bus (standalone)', () => {
  let bus: ClusteredEventBus;
  beforeEach(async () => {
    bus = newBus({ defaultTimeoutMs: 200 });
    await bus.start();
  });
  afterEach(async () => {
    await bus.close();
  });

  it('delivers sends to one consumer in round-robin order', async () => {
    const got: string[] = [];
    bus.consumer('a', () => void got.push('c1'));
    bus.consumer('a', () => void got.push('c2'));
    bus.consumer('a', () => void got.push('c3'));
    for (let i = 0; i < 6; i++) bus.send('a', i);
    await tick();
    expect(got).to.deep.equal(['c1', 'c2', 'c3', 'c1', 'c2', 'c3']);
  });

  it('delivers publishes to every consumer', async () => {
    const got: string[] = [];
    bus.consumer('p', (m: Message<string>) => void got.push(`1:${m.body}`));
    bus.localConsumer('p', (m: Message<string>) => void got.push(`2:${m.body}`));
    bus.publish('p', 'x');
    await tick();
    expect(got.sort()).to.deep.equal(['1:x', '2:x']);
  });

  it('keeps per-sender order to one consumer', async () => {
    const got: number[] = [];
    bus.consumer('order', (m: Message<number>) => void got.push(m.body));
    for (let i = 0; i < 1000; i++) bus.send('order', i);
    await tick();
    expect(got).to.deep.equal([...Array(1000).keys()]);
  });

  it('delivers asynchronously, never inside send()', () => {
    let called = false;
    bus.consumer('async', () => {
      called = true;
    });
    bus.send('async', 1);
    expect(called).to.equal(false);
  });

  it('answers a request with the reply and its headers', async () => {
    bus.consumer('echo', (m: Message<{ n: number }>) =>
      m.reply({ n: m.body.n + 1 }, { headers: { via: 'echo' } }),
    );
    const reply = await bus.request<{ n: number }>('echo', { n: 41 }, { headers: { a: 'b' } });
    expect(reply.body).to.deep.equal({ n: 42 });
    expect(reply.headers).to.deep.equal({ via: 'echo' });
  });

  it('passes headers to the consumer', async () => {
    let seen: Record<string, string> | undefined;
    bus.consumer('h', (m) => {
      seen = m.headers;
      m.reply(null);
    });
    await bus.request('h', 1, { headers: { trace: 't1' } });
    expect(seen).to.deep.equal({ trace: 't1' });
  });

  it('fails a request at once with NO_HANDLERS when nobody listens', async () => {
    // A 60 s timeout: only an immediate NO_HANDLERS can settle within the test's time.
    const err = await failureOf(bus.request('nobody', 1, { timeout: 60_000 }));
    expect(err.failureType).to.equal('NO_HANDLERS');
  });

  it('fails a request with TIMEOUT when the consumer never replies', async () => {
    bus.consumer('silent', () => {});
    const err = await failureOf(bus.request('silent', 1, { timeout: 30 }));
    expect(err.failureType).to.equal('TIMEOUT');
    expect(err.message).to.match(/30\(ms\)/);
  });

  it('uses the default timeout when none is given', async () => {
    bus.consumer('silent', () => {});
    const err = await failureOf(bus.request('silent', 1));
    expect(err.failureType).to.equal('TIMEOUT');
  });

  it('carries the recipient failure code and text', async () => {
    bus.consumer('f', (m) => m.fail(42, 'no way'));
    const err = await failureOf(bus.request('f', 1));
    expect(err.failureType).to.equal('RECIPIENT_FAILURE');
    expect(err.failureCode).to.equal(42);
    expect(err.message).to.equal('no way');
  });

  it('turns a throwing or rejecting handler into RECIPIENT_FAILURE (-1)', async () => {
    bus.consumer('throws', () => {
      throw new Error('boom');
    });
    bus.consumer('rejects', async () => {
      throw new Error('async boom');
    });
    const a = await failureOf(bus.request('throws', 1));
    const b = await failureOf(bus.request('rejects', 1));
    expect([a.failureType, a.failureCode, a.message]).to.deep.equal(['RECIPIENT_FAILURE', -1, 'boom']);
    expect([b.failureType, b.message]).to.deep.equal(['RECIPIENT_FAILURE', 'async boom']);
  });

  it('supports a conversation with replyAndRequest', async () => {
    bus.consumer('conv', async (m: Message<string>) => {
      const second = await m.replyAndRequest<string>(`${m.body}-1`);
      second.reply(`${second.body}-3`);
    });
    const first = await bus.request<string>('conv', 'x');
    expect(first.body).to.equal('x-1');
    const third = await first.replyAndRequest<string>(`${first.body}-2`);
    expect(third.body).to.equal('x-1-2-3');
  });

  it('stops delivering after unregister', async () => {
    const got: number[] = [];
    const c = bus.consumer('u', (m: Message<number>) => void got.push(m.body));
    bus.send('u', 1);
    await tick();
    await c.unregister();
    expect(c.isRegistered).to.equal(false);
    bus.send('u', 2);
    await tick();
    expect(got).to.deep.equal([1]);
    const err = await failureOf(bus.request('u', 3));
    expect(err.failureType).to.equal('NO_HANDLERS');
  });

  it('answers NO_HANDLERS when the consumer unregisters before its queued delivery', async () => {
    const c = bus.consumer('gone', (m) => m.reply('late'));
    const pending = bus.request('gone', 1);
    const unregistered = c.unregister(); // not awaited: the delivery is still queued
    const err = await failureOf(pending);
    expect(err.failureType).to.equal('NO_HANDLERS');
    await unregistered;
  });

  it('copies JSON bodies so a consumer never shares the sender object', async () => {
    const sent = { list: [1] };
    let received: { list: number[] } | undefined;
    bus.consumer('copy', (m: Message<{ list: number[] }>) => {
      received = m.body;
    });
    bus.send('copy', sent);
    sent.list.push(2);
    await tick();
    expect(received).to.deep.equal({ list: [1] });
  });

  it('carries raw bytes with the bytes codec', async () => {
    bus.consumer('bin', (m: Message<Buffer>) => m.reply(Buffer.concat([m.body, Buffer.from([9])])));
    const reply = await bus.request<Buffer>('bin', Buffer.from([1, 2, 3]));
    expect(Buffer.isBuffer(reply.body)).to.equal(true);
    expect([...reply.body]).to.deep.equal([1, 2, 3, 9]);
  });

  it('rejects bad input synchronously and delivers nothing', async () => {
    const got: unknown[] = [];
    bus.consumer('ok', (m) => void got.push(m.body));
    const cases: [() => void, string][] = [
      [() => bus.send('', 1), 'INVALID_ADDRESS'],
      [() => bus.send('x'.repeat(201), 1), 'INVALID_ADDRESS'],
      [() => bus.send('has space', 1), 'INVALID_ADDRESS'],
      [() => bus.send('ctl\u0001', 1), 'INVALID_ADDRESS'],
      [() => bus.send(42 as unknown as string, 1), 'INVALID_ADDRESS'],
      [() => bus.send('ok', 1n), 'INVALID_BODY'],
      [() => bus.send('ok', 'x', { codec: 'bytes' }), 'INVALID_BODY'],
      [() => bus.send('ok', 1, { codec: 'nope' }), 'UNKNOWN_CODEC'],
      [() => bus.send('ok', 1, { headers: { a: 1 as unknown as string } }), 'INVALID_OPTIONS'],
      // Throws before any promise exists; one returned instead fails the expect below, not later.
      [() => void bus.request('ok', 1, { timeout: 0 }).catch(() => {}), 'INVALID_OPTIONS'],
      [() => bus.consumer('', () => {}), 'INVALID_ADDRESS'],
    ];
    for (const [call, code] of cases) {
      expect(call).to.throw(EventBusError).with.property('code', code);
    }
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => bus.send('ok', circular))
      .to.throw(EventBusError)
      .with.property('code', 'INVALID_BODY');
    await tick();
    expect(got).to.deep.equal([]);
  });

  it('refuses bodies over the size limit', async () => {
    const small = newBus({ maxBodyBytes: 1024 });
    await small.start();
    try {
      small.consumer('big', () => {});
      expect(() => small.send('big', 'x'.repeat(2000)))
        .to.throw(EventBusError)
        .with.property('code', 'MESSAGE_TOO_LARGE');
    } finally {
      await small.close();
    }
  });

  it('accepts an address of exactly 200 characters', async () => {
    const address = 'a'.repeat(200);
    bus.consumer(address, (m) => m.reply('ok'));
    expect((await bus.request(address, 1)).body).to.equal('ok');
  });

  it('fails pending requests and refuses new calls once closed', async () => {
    bus.consumer('slow', () => {});
    const pending = bus.request('slow', 1, { timeout: 10_000 });
    await bus.close();
    const err = await failureOf(pending);
    expect(err.failureType).to.equal('ERROR');
    expect(() => bus.send('slow', 1))
      .to.throw(EventBusError)
      .with.property('code', 'CLOSED');
  });
});
