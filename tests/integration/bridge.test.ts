import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChatMessage, CONTROL_ADDRESS, type JoinReply } from '@switchboard/protocol';
import { BusNode } from '../helpers/bus-nodes.js';
import { closeAll, type Frame, isRefusal, WsClient } from '../helpers/ws-client.js';
import { waitFor } from '../infra/proc.js';

/**
 * Acceptance tests of the raw WebSocket bridge (`/eventbus/websocket`, docs/protocol.md), seen
 * from a client: real node processes, the `ws` client, frames in and out.
 */

const CONTROL = CONTROL_ADDRESS;

let roomSeq = 0;
/** A fresh room name per test, so tests never see each other's messages or presence. */
function room(prefix: string): string {
  return `${prefix}-${process.pid}-${++roomSeq}`;
}

const isErr = isRefusal;

/** W3C traceparent: the bridge starts one for every frame that carries none (docs/protocol.md). */
const TRACEPARENT_FORMAT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;

/** Waits for a rate-limited socket's tokens to come back: a request is answered again. */
async function answeredAgain(c: WsClient): Promise<void> {
  let n = 0;
  await waitFor(
    'the rate-limited socket to be answered again',
    async () => {
      // still refused: asked again
      const answer = await c.request('test.echo', ++n, undefined, 1_000).catch(() => undefined);
      return answer?.type === 'rec';
    },
    15_000,
    0,
  );
}

function withoutTrace(headers: Record<string, string> | undefined): Record<string, string> {
  const { traceparent, ...rest } = headers ?? {};
  expect(traceparent, 'traceparent').to.match(TRACEPARENT_FORMAT);
  return rest;
}

describe('WebSocket bridge /eventbus/websocket', function () {
  this.timeout(60_000);

  const nodes: BusNode[] = [];
  const dirs: string[] = [];
  const clients = new Set<WsClient>();
  /** test.* and a few permission fixtures; slow readers are cut at 64 KiB. */
  let main: BusNode;
  /** Small reply timeout, frame limit, idle timeout and handler limit. */
  let limits: BusNode;
  /** 5 frames per second (bursts of 10). */
  let rate: BusNode;
  /** No BRIDGE_PERMISSIONS at all: the default chat permissions. */
  let chat: BusNode;

  async function startNode(name: string, env: Record<string, string>): Promise<BusNode> {
    const dir = await mkdtemp(join(tmpdir(), `sb-bridge-${name}-`));
    dirs.push(dir);
    const node = await BusNode.start(`bridge-${name}`, { DATA_DIR: dir, ...env });
    nodes.push(node);
    return node;
  }

  async function open(
    node: BusNode,
  ): Promise<{ client: WsClient; hello: { session: string; node: string } }> {
    const r = await WsClient.open(node.httpUrl);
    clients.add(r.client);
    return r;
  }

  async function connect(node: BusNode): Promise<WsClient> {
    return (await open(node)).client;
  }

  const testPermissions = (extra: { inbound?: object[]; outbound?: object[] } = {}): string =>
    JSON.stringify({
      inbound: [{ addressRegex: 'test\\..*' }, ...(extra.inbound ?? [])],
      outbound: [{ addressRegex: 'test\\..*' }, ...(extra.outbound ?? [])],
    });

  before(async function () {
    this.timeout(120_000);
    const started = await Promise.allSettled([
      startNode('main', {
        BRIDGE_PERMISSIONS: testPermissions({
          inbound: [
            { address: 'm.in', match: { kind: 'ok' } },
            { addressRegex: 'num\\.[0-9]+' },
            { address: 'auth.in', requiredAuthority: 'admin' },
          ],
          outbound: [
            { address: 'm.out', match: { kind: 'ok' } },
            { addressRegex: 'num\\.[0-9]+' },
            { address: 'auth.out', requiredAuthority: 'admin' },
          ],
        }),
        BRIDGE_MAX_BUFFERED_BYTES: '65536',
      }),
      startNode('limits', {
        BRIDGE_PERMISSIONS: testPermissions(),
        BRIDGE_REPLY_TIMEOUT_MS: '300',
        BRIDGE_MAX_FRAME_BYTES: '2048',
        BRIDGE_IDLE_TIMEOUT_MS: '1500',
        BRIDGE_MAX_HANDLERS: '3',
      }),
      startNode('rate', { BRIDGE_PERMISSIONS: testPermissions(), BRIDGE_RATE_PER_SEC: '5' }),
      startNode('chat', {}),
    ]);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    [main, limits, rate, chat] = started.map((s) => (s as PromiseFulfilledResult<BusNode>).value) as [
      BusNode,
      BusNode,
      BusNode,
      BusNode,
    ];
    await Promise.all([
      main.consumer('test.echo', 'echo'),
      main.consumer('test.fail', 'fail'),
      main.consumer('test.converse', 'converse'),
      main.consumer('test.sink', 'record'),
      main.consumer('test.pub', 'record'),
      main.consumer('test.pub', 'record'),
      main.consumer('test.one', 'record'),
      main.consumer('test.one', 'record'),
      main.consumer('m.in', 'record'),
      main.consumer('num.12', 'record'),
      limits.consumer('test.silent', 'silent'),
      limits.consumer('test.echo', 'echo'),
      rate.consumer('test.echo', 'echo'),
    ]);
  });

  afterEach(async () => {
    await closeAll(clients);
    clients.clear();
  });

  after(async function () {
    this.timeout(60_000);
    await closeAll(clients);
    await Promise.allSettled(nodes.map((n) => n.proc.stop()));
    await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  // --- 1. frame types ------------------------------------------------------------------------

  describe('frames', () => {
    it('sends the hello control frame (session and node) right after the socket opens', async () => {
      const a = await WsClient.connect(main.httpUrl);
      clients.add(a);
      const b = await WsClient.connect(main.httpUrl);
      clients.add(b);
      const helloA = await a.hello();
      const helloB = await b.hello();
      expect(a.frames[0], 'the first frame is the hello').to.deep.equal({
        type: 'rec',
        address: CONTROL,
        body: { kind: 'hello', session: helloA.session, node: main.nodeId },
      });
      expect(helloA.session).to.be.a('string').and.not.equal('');
      expect(helloB.node).to.equal(main.nodeId);
      expect(helloB.session).to.not.equal(helloA.session);
    });

    it('answers ping with pong', async () => {
      const c = await connect(main);
      c.send({ type: 'ping' });
      const pong = await c.next((f) => f.type === 'pong', 'pong');
      expect(pong).to.deep.equal({ type: 'pong' });
    });

    it('sends without replyAddress to one consumer', async () => {
      const c = await connect(main);
      c.send({ type: 'send', address: 'test.sink', body: { n: 'fire-and-forget' } });
      await waitFor(
        'the node to receive the send',
        async () =>
          (await main.received('test.sink')).some((b) => JSON.stringify(b) === '{"n":"fire-and-forget"}'),
        10_000,
      );
      // Point-to-point: of the two consumers of test.one, exactly one gets it.
      c.send({ type: 'send', address: 'test.one', body: 'once' });
      await c.call('test.echo', 'barrier'); // frames are handled in order, deliveries are FIFO
      await waitFor('the send to test.one', async () => (await main.received('test.one')).length > 0, 10_000);
      expect(await main.received('test.one')).to.deep.equal(['once']);
      expect(c.all(isErr)).to.deep.equal([]);
    });

    it('sends with replyAddress and gets the reply as a rec frame addressed to it', async () => {
      const { client: c, hello } = await open(main);
      c.send({ type: 'send', address: 'test.echo', body: { q: 1 }, replyAddress: 'my-reply-1' });
      const reply = await c.nextRec('my-reply-1');
      const { traceparent, ...stamped } = (reply.body as { headers: Record<string, string> }).headers;
      expect(traceparent, 'a trace started for the frame').to.match(TRACEPARENT_FORMAT);
      expect({ ...reply, body: { ...(reply.body as object), headers: stamped } }).to.deep.equal({
        type: 'rec',
        address: 'my-reply-1',
        body: {
          from: main.nodeId,
          body: { q: 1 },
          headers: { 'sb-session': hello.session, 'sb-node': main.nodeId },
        },
      });
    });

    it('publishes to every consumer', async () => {
      const c = await connect(main);
      c.send({ type: 'publish', address: 'test.pub', body: { news: 1 } });
      await waitFor(
        'both consumers of test.pub',
        async () => (await main.received('test.pub')).length >= 2,
        10_000,
      );
      await c.call('test.echo', 'barrier');
      expect(await main.received('test.pub')).to.deep.equal([{ news: 1 }, { news: 1 }]);
    });

    it('registers: server publishes arrive as rec frames; unregister stops them', async () => {
      const c = await connect(main);
      await c.register('test.news');
      await c.register('test.marker');
      await main.publish('test.news', { headline: 'one' });
      expect(await c.nextRec('test.news')).to.deep.equal({
        type: 'rec',
        address: 'test.news',
        body: { headline: 'one' },
      });
      await c.unregister('test.news');
      await main.publish('test.news', { headline: 'two' });
      // A later publish on another address is a barrier: deliveries to one socket keep their order.
      await main.publish('test.marker', 'after');
      await c.nextRec('test.marker');
      expect(c.all((f) => f.address === 'test.news').map((f) => f.body)).to.deep.equal([{ headline: 'one' }]);
      expect(c.all(isErr)).to.deep.equal([]);
    });

    it('relays a server request to the client and the client send back as the reply', async () => {
      const c = await connect(main);
      await c.register('test.ask');
      const pending = main.request('test.ask', { question: 'six times seven?' }, 10_000);
      const rec = await c.nextRec('test.ask');
      expect(rec.body).to.deep.equal({ question: 'six times seven?' });
      expect(rec.replyAddress, 'a request reaches the client with a replyAddress').to.be.a('string').and.not
        .empty;
      // The reply address is not in the inbound permissions: replies always pass.
      c.send({ type: 'send', address: rec.replyAddress, body: { answer: 42 } });
      expect(await pending).to.deep.equal({ ok: true, body: { answer: 42 } });
      expect(c.all(isErr)).to.deep.equal([]);
    });

    it('lets a client answer a request it sent to an address it registered itself', async () => {
      const c = await connect(main);
      await c.register('test.self-ask');
      c.send({ type: 'send', address: 'test.self-ask', body: 'ping?', replyAddress: 'self-1' });
      const rec = await c.nextRec('test.self-ask');
      expect(rec.body).to.equal('ping?');
      c.send({ type: 'send', address: rec.replyAddress, body: 'pong!' });
      expect(await c.nextRec('self-1')).to.deep.include({ body: 'pong!' });
    });

    it('goes on with the exchange when the client answers with a replyAddress of its own (replyAndRequest)', async () => {
      const c = await connect(main);
      // test.converse answers {question, got} and waits for a reply to that, which it answers too.
      c.send({ type: 'send', address: 'test.converse', body: 'hi', replyAddress: 'conv-1' });
      const question = await c.nextRec('conv-1');
      expect(question.body).to.deep.equal({ question: 'again?', got: 'hi' });
      c.send({ type: 'send', address: question.replyAddress, body: 'yes', replyAddress: 'conv-2' });
      expect((await c.nextRec('conv-2')).body).to.deep.equal({ answer: 'yes' });
      // The alias was used up: a second answer is refused.
      c.send({ type: 'send', address: question.replyAddress, body: 'again', replyAddress: 'conv-3' });
      expect((await c.nextError()).body).to.equal('access_denied');
      expect(c.all((f) => f.address === 'conv-3')).to.deep.equal([]);
    });

    it('passes headers through, drops client sb-* headers, stamps sb-session and sb-node on the bus and not for recipients', async () => {
      const { client: c, hello } = await open(main);
      const headers = {
        'x-trace': 't-1',
        'sb-session': 'forged-session',
        'sb-node': 'forged-node',
        'sb-user': 'mallory',
        'sb-anything': 'x',
      };
      const stamped = { 'x-trace': 't-1', 'sb-session': hello.session, 'sb-node': main.nodeId };
      // The control port's `received` keeps bodies only: headers are seen through an echo
      // consumer, whose reply carries the headers it got.
      const echoed = await c.call<{ headers: Record<string, string> }>('test.echo', 'h', headers);
      expect(withoutTrace(echoed.headers)).to.deep.equal(stamped);
      // A client receiving the publish gets what the sender sent, not the node's own headers
      // (sb-session, sb-node, traceparent: docs/protocol.md, What a recipient gets).
      await c.register('test.self');
      c.send({ type: 'publish', address: 'test.self', body: 'p', headers });
      expect((await c.nextRec('test.self')).headers).to.deep.equal({ 'x-trace': 't-1' });
      // And for the client's reply to a server request.
      await c.register('test.ask-headers');
      const pending = main.request('test.ask-headers', 'q', 10_000);
      const rec = await c.nextRec('test.ask-headers');
      c.send({ type: 'send', address: rec.replyAddress, body: 'a', headers });
      expect((await pending).body).to.equal('a');
    });

    it('answers reply failures: RECIPIENT_FAILURE with its code, NO_HANDLERS', async () => {
      const c = await connect(main);
      const failed = await c.request('test.fail', 1);
      expect(failed).to.deep.include({ type: 'err', failureType: 'RECIPIENT_FAILURE', failureCode: 418 });
      expect(failed.message).to.equal(`refused by ${main.nodeId}`);
      expect(failed).to.not.have.property('body');

      const none = await c.request('test.nobody', 1);
      expect(none).to.include({ type: 'err', failureType: 'NO_HANDLERS' });
      expect(none.failureCode).to.be.a('number');
      expect(none.message).to.contain('test.nobody');
    });

    it('answers TIMEOUT after BRIDGE_REPLY_TIMEOUT_MS', async () => {
      const c = await connect(limits);
      const timedOut = await c.request('test.silent', 1);
      expect(timedOut).to.include({ type: 'err', failureType: 'TIMEOUT' });
      expect(timedOut.failureCode).to.be.a('number');
      expect(timedOut.message).to.be.a('string').and.contain('test.silent');
      await c.ping();
    });
  });

  // --- 2. error bodies -----------------------------------------------------------------------

  describe('refused frames', () => {
    /** Sends the frame, expects `{type:'err', body}`, then checks the socket still answers a ping. */
    async function refused(c: WsClient, frame: unknown, body: string, binary = false): Promise<Frame> {
      if (typeof frame === 'string' || Buffer.isBuffer(frame)) c.sendRaw(frame, binary);
      else c.send(frame);
      const err = await c.nextError();
      const what = Buffer.isBuffer(frame)
        ? `${frame.length} binary bytes`
        : JSON.stringify(frame).slice(0, 80);
      expect(err.body, `answer to ${what}`).to.equal(body);
      expect(err.type).to.equal('err');
      await c.ping();
      return err;
    }

    it('invalid_json: not JSON, or JSON that is not an object', async () => {
      const c = await connect(main);
      for (const text of ['not json', '{"type":"ping"', '', '[1,2,3]', '42', '"ping"', 'null', 'true']) {
        await refused(c, text, 'invalid_json');
      }
      await refused(c, randomBytes(64), 'invalid_json', true);
      // A binary frame holding JSON is a frame like any other.
      c.sendRaw(Buffer.from('{"type":"ping"}'), true);
      await c.next((f) => f.type === 'pong', 'pong to a binary ping');
    });

    it('missing_type, invalid_type, missing_address', async () => {
      const c = await connect(main);
      await refused(c, { address: 'test.sink', body: 1 }, 'missing_type');
      await refused(c, { type: 'bogus', address: 'test.sink' }, 'invalid_type');
      await refused(c, { type: 7, address: 'test.sink' }, 'invalid_type');
      // As Vert.x: null is absent; the address is checked before the type is.
      await refused(c, { type: null, address: 'test.sink' }, 'missing_type');
      await refused(c, { type: 'bogus' }, 'missing_address');
      await refused(c, { type: 'send', body: 1 }, 'missing_address');
      await refused(c, { type: 'register' }, 'missing_address');
      await refused(c, { type: 'unregister', address: null }, 'missing_address');
      // An integer address is read as its string, as Vert.x reads it: "5" is not permitted.
      await refused(c, { type: 'publish', address: 5, body: 1 }, 'access_denied');
      await refused(c, { type: 'send', address: { a: 1 }, body: 1 }, 'invalid_frame');
    });

    it('access_denied: inbound send and publish, outbound register and unregister', async () => {
      const c = await connect(main);
      await refused(c, { type: 'send', address: 'nope.a', body: 1 }, 'access_denied');
      await refused(c, { type: 'send', address: 'nope.a', body: 1, replyAddress: 'r1' }, 'access_denied');
      await refused(c, { type: 'publish', address: 'nope.a', body: 1 }, 'access_denied');
      await refused(c, { type: 'register', address: 'nope.a' }, 'access_denied');
      // As Vert.x: refused whether registered or not; a permitted address never registered is not.
      await refused(c, { type: 'unregister', address: 'nope.a' }, 'access_denied');
      c.send({ type: 'unregister', address: 'test.never' });
      await c.ping();
      expect(c.all((f) => f.address === 'r1')).to.deep.equal([]);
    });

    it('a refusal names the refused frame by its address and replyAddress in `refused`, a reply failure does not change', async () => {
      const c = await connect(main);
      c.send({ type: 'send', address: 'nope.a', body: { b: 1 }, headers: { h: 'v' }, replyAddress: 'r1' });
      expect(await c.nextError()).to.deep.equal({
        type: 'err',
        body: 'access_denied',
        refused: { address: 'nope.a', replyAddress: 'r1' },
      });
      c.send({ type: 'register', address: 'nope.b' });
      expect(await c.nextError()).to.deep.equal({
        type: 'err',
        body: 'access_denied',
        refused: { address: 'nope.b' },
      });
      const long = `test.${'a'.repeat(196)}`;
      c.send({ type: 'send', address: long, body: 1, replyAddress: 'r2' });
      expect(await c.nextError(), 'an address over 200 characters is not echoed').to.deep.equal({
        type: 'err',
        body: 'max_address_length_reached',
        refused: { replyAddress: 'r2' },
      });
      const failed = await c.request('test.fail', 1);
      expect(Object.keys(failed).sort()).to.deep.equal([
        'address',
        'failureCode',
        'failureType',
        'message',
        'type',
      ]);
      expect(failed).to.deep.include({ type: 'err', failureType: 'RECIPIENT_FAILURE', failureCode: 418 });
    });

    it('after a rate_limited refusal (which names nothing), refusals still name their frame', async () => {
      const c = await connect(rate);
      for (let i = 0; i < 30; i++) c.send({ type: 'ping' });
      expect(await c.nextError('rate_limited')).to.not.have.any.keys('refused', 'address', 'replyAddress');
      await answeredAgain(c);
      c.send({ type: 'send', address: 'nope.a', body: 1, replyAddress: 'after-limit' });
      expect((await c.nextError('access_denied')).refused).to.deep.equal({
        address: 'nope.a',
        replyAddress: 'after-limit',
      });
    });

    it('max_address_length_reached above 200 characters', async () => {
      const c = await connect(main);
      const long = `test.${'a'.repeat(196)}`;
      expect(long).to.have.length(201);
      await refused(c, { type: 'send', address: long, body: 1 }, 'max_address_length_reached');
      await refused(c, { type: 'register', address: long }, 'max_address_length_reached');
      // 200 is still fine: no consumer, so NO_HANDLERS.
      const answer = await c.request(long.slice(0, 200), 1);
      expect(answer.failureType).to.equal('NO_HANDLERS');
    });

    it('address_already_registered', async () => {
      const c = await connect(main);
      await c.register('test.dup');
      await refused(c, { type: 'register', address: 'test.dup' }, 'address_already_registered');
      // Still registered once: one rec per publish.
      await main.publish('test.dup', 'once');
      await c.nextRec('test.dup');
      await c.ping();
      expect(c.all((f) => f.type === 'rec' && f.address === 'test.dup')).to.have.length(1);
    });

    it('max_handlers_reached at BRIDGE_MAX_HANDLERS, and room again after an unregister', async () => {
      const c = await connect(limits);
      for (const a of ['test.h1', 'test.h2', 'test.h3']) await c.register(a);
      await refused(c, { type: 'register', address: 'test.h4' }, 'max_handlers_reached');
      await c.unregister('test.h1');
      await c.register('test.h4');
      await limits.publish('test.h4', 'in');
      expect((await c.nextRec('test.h4')).body).to.equal('in');
      expect(c.all(isErr)).to.have.length(1);
    });

    it('invalid_reply_address: longer than 36 characters; an empty one is one like any other', async () => {
      const c = await connect(main);
      await refused(
        c,
        { type: 'send', address: 'test.echo', body: 1, replyAddress: 'x'.repeat(37) },
        'invalid_reply_address',
      );
      // As Vert.x: the empty string is a reply address.
      c.send({ type: 'send', address: 'test.echo', body: 0, replyAddress: '' });
      expect((await c.nextRec('')).body).to.deep.include({ body: 0 });
      const exact = 'y'.repeat(36);
      c.send({ type: 'send', address: 'test.echo', body: 36, replyAddress: exact });
      expect((await c.nextRec(exact)).body).to.deep.include({ body: 36 });
    });

    it('frame_too_large above BRIDGE_MAX_FRAME_BYTES; the socket stays open', async () => {
      const c = await connect(limits);
      const err = await refused(
        c,
        { type: 'send', address: 'test.echo', body: 'z'.repeat(3000), replyAddress: 'big' },
        'frame_too_large',
      );
      expect(err.message).to.contain('2048');
      expect(c.all((f) => f.address === 'big')).to.deep.equal([]);
      // Just under the limit goes through.
      const fits = await c.call<{ body: string }>('test.echo', 'z'.repeat(1900));
      expect(fits.body).to.have.length(1900);
    });

    it('closes with 1009 above the hard limit (1 MiB)', async () => {
      const c = await connect(limits);
      const other = await connect(limits);
      c.send({ type: 'send', address: 'test.echo', body: 'z'.repeat(1024 * 1024 + 100) });
      const closed = await c.waitClose(10_000);
      expect(closed.code).to.equal(1009);
      await other.ping(); // the node is fine
    });

    it('rate_limited above BRIDGE_RATE_PER_SEC; the frame is dropped and the socket recovers', async () => {
      const c = await connect(rate);
      const other = await connect(rate);
      for (let i = 0; i < 30; i++) c.send({ type: 'ping' });
      const err = await c.nextError('rate_limited');
      expect(err.message).to.contain('5');
      // Tokens come back (5 per second): a request is answered again.
      await answeredAgain(c);
      // Every ping of the burst was handled before that request: the dropped ones got no pong.
      const pongs = c.all((f) => f.type === 'pong').length;
      expect(pongs).to.be.at.least(10).and.below(30);
      expect(c.isOpen).to.equal(true);
      // Per socket: the other socket on the node was never limited.
      await other.ping();
      expect(other.all(isErr)).to.deep.equal([]);
    });

    it('invalid_frame: a field of the wrong type', async () => {
      const c = await connect(main);
      await refused(c, { type: 'send', address: 'test.sink', body: 1, headers: { a: 1.5 } }, 'invalid_frame');
      await refused(
        c,
        { type: 'publish', address: 'test.sink', body: 1, headers: { a: null } },
        'invalid_frame',
      );
      await refused(c, { type: 'register', address: 'test.x', headers: { a: { b: 'c' } } }, 'invalid_frame');
      await refused(c, { type: 'send', address: 'test.echo', body: 1, replyAddress: [5] }, 'invalid_frame');
      await refused(c, { type: 'send', address: 'test.sink', body: 1, headers: 'h' }, 'invalid_frame');
    });

    it('reads integers and booleans as strings, and null as absent, as Vert.x does', async () => {
      const c = await connect(main);
      c.send({ type: 'send', address: 'test.echo', body: 1, headers: { n: 5, t: true }, replyAddress: 7 });
      const rec = await c.nextRec('7');
      expect(rec.body).to.deep.include({ body: 1 });
      expect(withoutTrace((rec.body as { headers: Record<string, string> }).headers)).to.deep.include({
        n: '5',
        t: 'true',
      });
      c.send({ type: 'send', address: 'test.echo', body: 2, headers: null, replyAddress: 'r2' });
      expect((await c.nextRec('r2')).body).to.deep.include({ body: 2 });
      c.send({ type: 'send', address: 'test.echo', body: 3, replyAddress: null });
      await c.ping();
      expect(c.all(isErr)).to.deep.equal([]);
    });
  });

  // --- 3. garbage ----------------------------------------------------------------------------

  describe('garbage', () => {
    const deepArrays = '['.repeat(30_000) + ']'.repeat(30_000);
    const deepBody = (address: string, extra = ''): string =>
      `{"type":"send","address":"${address}"${extra},"body":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`;

    it('refuses huge nesting with an err frame and stays usable', async () => {
      const c = await connect(main);
      c.sendRaw(deepArrays);
      expect((await c.nextError()).body).to.equal('invalid_json');
      // A deeply nested body cannot be put on the bus.
      c.sendRaw(deepBody('test.sink'));
      expect((await c.nextError()).body).to.equal('invalid_frame');
      // Refused before they leave, requests hold no slot (BRIDGE_MAX_INFLIGHT is 16).
      for (let i = 0; i < 20; i++) {
        c.sendRaw(deepBody('test.echo', ',"replyAddress":"deep"'));
        expect((await c.nextError()).body).to.equal('invalid_frame');
      }
      await c.ping();
      expect(await c.call('test.echo', 'still here')).to.deep.include({ body: 'still here' });
    });

    it('answers a frame whose nesting breaks a permission `match` with an err frame', async () => {
      const c = await connect(main);
      // m.in is permitted only for bodies with kind "ok"; here kind is nested 30,000 deep.
      c.sendRaw(`{"type":"send","address":"m.in","body":{"kind":${deepArrays}}}`);
      c.send({ type: 'ping' });
      const answer = await c.next((f) => f.type === 'err' || f.type === 'pong', 'an answer to the frame');
      expect(answer, 'the frame is refused, not silently dropped').to.deep.include({
        type: 'err',
        body: 'access_denied',
      });
    });

    it('survives a garbage storm while another socket on the node keeps chatting', async () => {
      const storm = await connect(main);
      const { client: calm, hello } = await open(main);
      const garbage: (() => void)[] = [
        () => storm.sendRaw(randomBytes(1 + Math.floor(Math.random() * 2000)), true),
        () => storm.sendRaw(randomBytes(100).toString('latin1')),
        () => storm.sendRaw(''),
        () => storm.sendRaw('[1,2,3]'),
        () => storm.sendRaw('123456789'),
        () => storm.sendRaw('1e999'),
        () => storm.sendRaw('"\ud800"'),
        () => storm.sendRaw('{"type":'),
        () => storm.sendRaw('{"__proto__":{"type":"send"},"address":"test.sink"}'),
        () => storm.sendRaw(deepArrays),
        () => storm.sendRaw(deepBody('test.sink')),
        () => storm.sendRaw(deepBody('m.in')),
        () => storm.sendRaw(`{"type":"send","address":"m.in","body":{"kind":${deepArrays}}}`),
        () => storm.send({ type: 'send', address: 'test.sink', headers: [1, 2] }),
        () => storm.send({ type: 'register', address: { a: 1 } }),
        () => storm.send({ type: 'send', address: '', body: 1 }),
        () => storm.send({ type: 'send', address: 'test.with space', body: 1 }),
        () => storm.send({ type: 'unregister', address: 'test.never' }),
        () => storm.send({ type: 'send', address: '__sb.reply.forged.1', body: 'spoofed reply' }),
      ];
      let calls = 0;
      const chatting = (async () => {
        for (let i = 0; i < 40; i++) {
          const reply = await calm.call<{ body: number; headers: Record<string, string> }>('test.echo', i);
          expect(reply.body).to.equal(i);
          expect(reply.headers['sb-session']).to.equal(hello.session);
          await calm.ping();
          calls++;
        }
      })();
      for (let i = 0; i < 300; i++) {
        garbage[i % garbage.length]!();
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      await chatting;
      expect(calls).to.equal(40);
      expect(calm.all(isErr)).to.deep.equal([]);
      // The storm socket itself is answered with err frames and is still usable.
      await storm.ping(10_000);
      expect(storm.all(isErr).length).to.be.greaterThan(0);
      expect(storm.all((f) => f.type === '<non-json>')).to.deep.equal([]);
      // The node is up: new sockets get their hello, and its health endpoint answers.
      const fresh = await connect(main);
      await fresh.ping();
      const health = await fetch(`${main.httpUrl}/health`, { signal: AbortSignal.timeout(5_000) });
      expect(health.status).to.equal(200);
      expect(main.proc.isRunning()).to.equal(true);
    });
  });

  // --- 4. permissions ------------------------------------------------------------------------

  describe('permissions', () => {
    it('default permissions allow exactly the chat addresses, inbound and outbound', async () => {
      const c = await connect(chat);
      const r = room('perm');
      // Inbound: the four chat requests reach the chat service (its answers, not access_denied).
      const answers = await Promise.all([
        c.request('chat.join', { room: r, user: 'pat' }),
        c.request('chat.send', { room: r, user: 'pat', clientMsgId: 'p1', text: 'hi' }),
        c.request('chat.history', { room: r }),
        c.request('chat.leave', { room: r, user: 'pat' }),
      ]);
      for (const a of answers) expect(a.type, JSON.stringify(a)).to.equal('rec');
      expect(c.all(isErr)).to.deep.equal([]);

      const deniedInbound = [
        `chat.room.${r}`,
        `chat.presence.${r}`,
        'chat.joinx',
        'chat.join.x',
        'xchat.join',
        'chat',
        'test.echo',
      ];
      for (const address of deniedInbound) {
        for (const type of ['send', 'publish']) {
          c.send({ type, address, body: { room: r, user: 'pat', clientMsgId: 'p2', text: 'fake' } });
          const err = await c.nextError();
          expect(err.body, `${type} ${address}`).to.equal('access_denied');
        }
      }

      // Outbound: chat.room.<room> and chat.presence.<room> only, whole-string.
      await c.register(`chat.room.${r}`);
      await c.register(`chat.presence.${r}`);
      await c.register(`chat.room.${'a'.repeat(64)}`);
      expect(c.all(isErr)).to.have.length(deniedInbound.length * 2);
      const deniedOutbound = [
        'chat.join',
        'chat.send',
        `chat.room.${'a'.repeat(65)}`,
        'chat.room.',
        'chat.room.a.b',
        'chat.room.a!',
        `xchat.room.${r}`,
        `chat.presence.${r}.x`,
        'test.news',
      ];
      for (const address of deniedOutbound) {
        c.send({ type: 'register', address });
        expect((await c.nextError()).body, `register ${address}`).to.equal('access_denied');
      }
      await c.ping();
    });

    it('replies always pass: a replyAddress outside every outbound permission gets its reply', async () => {
      const c = await connect(chat);
      c.send({
        type: 'send',
        address: 'chat.history',
        body: { room: room('rp') },
        replyAddress: 'anything-at-all',
      });
      const rec = await c.nextRec('anything-at-all');
      expect(rec.body).to.deep.include({ messages: [] });
      expect((rec.body as { epoch: string }).epoch).to.be.a('string');
    });

    it('addressRegex matches the whole address', async () => {
      const c = await connect(main);
      for (const address of ['xtest.a', 'num.12x', 'anum.12', 'num.', 'num.1.2']) {
        c.send({ type: 'send', address, body: 1 });
        expect((await c.nextError()).body, address).to.equal('access_denied');
        c.send({ type: 'register', address });
        expect((await c.nextError()).body, `register ${address}`).to.equal('access_denied');
      }
      c.send({ type: 'send', address: 'num.12', body: 'numbered' });
      await waitFor(
        'num.12 to be received',
        async () => (await main.received('num.12')).length === 1,
        10_000,
      );
      expect(await main.received('num.12')).to.deep.equal(['numbered']);
      await c.register('num.7');
      await c.register('test.a.b.c');
      expect(c.all(isErr)).to.have.length(10);
    });

    it('match lets only matching bodies in', async () => {
      const c = await connect(main);
      c.send({ type: 'send', address: 'm.in', body: { kind: 'ok', n: 1 } });
      for (const body of [{ kind: 'bad', n: 2 }, { n: 3 }, 'ok', null, [{ kind: 'ok' }], { kind: ['ok'] }]) {
        c.send({ type: 'send', address: 'm.in', body });
        expect((await c.nextError()).body, JSON.stringify(body)).to.equal('access_denied');
      }
      c.send({ type: 'publish', address: 'm.in', body: { kind: 'ok', n: 4 } });
      await waitFor(
        'm.in to receive 2 messages',
        async () => (await main.received('m.in')).length >= 2,
        10_000,
      );
      await c.call('test.echo', 'barrier');
      expect(await main.received('m.in')).to.deep.equal([
        { kind: 'ok', n: 1 },
        { kind: 'ok', n: 4 },
      ]);
    });

    it('match filters outbound messages one by one', async () => {
      const c = await connect(main);
      await c.register('m.out'); // the address may be registered; each message is checked
      for (const body of [
        { kind: 'ok', n: 1 },
        { kind: 'bad', n: 2 },
        'plain',
        { n: 3 },
        { kind: 'ok', n: 4 },
      ]) {
        await main.publish('m.out', body);
      }
      await c.next((f) => f.address === 'm.out' && (f.body as { n?: number }).n === 4, 'the last m.out');
      expect(c.all((f) => f.address === 'm.out').map((f) => f.body)).to.deep.equal([
        { kind: 'ok', n: 1 },
        { kind: 'ok', n: 4 },
      ]);
      // A request that does not match never reaches the client: the requester times out.
      const pending = main.request('m.out', { kind: 'bad' }, 500);
      expect(await pending).to.include({ ok: false, failureType: 'TIMEOUT' });
    });

    it('requiredAuthority without a token: not_logged_in', async () => {
      const c = await connect(main);
      c.send({ type: 'send', address: 'auth.in', body: 1 });
      expect((await c.nextError()).body).to.equal('not_logged_in');
      c.send({ type: 'register', address: 'auth.out' });
      expect((await c.nextError()).body).to.equal('not_logged_in');
      await c.ping();
      expect(c.isOpen).to.equal(true);
    });
  });

  // --- 5. idle -------------------------------------------------------------------------------

  describe('idle sockets', () => {
    it('closes a silent socket with 4000 after BRIDGE_IDLE_TIMEOUT_MS; a pinging one stays open', async () => {
      const silent = await connect(limits);
      const pinging = await connect(limits);
      let stop = false;
      let pongs = 0;
      const pinger = (async () => {
        while (!stop) {
          await pinging.ping();
          pongs++;
          await new Promise((r) => setTimeout(r, 300));
        }
      })();
      try {
        const closed = await silent.waitClose(15_000);
        expect(closed.code).to.equal(4000);
        // Keep pinging for longer than another idle timeout after the silent one was closed.
        const until = pongs + 8; // 8 × ≥ 300 ms > 1500 ms
        await waitFor('more pongs', () => pongs >= until || pinging.closedWith, 15_000);
      } finally {
        stop = true;
        await pinger.catch(() => {}); // how it ended is checked below, on the socket
      }
      expect(pinging.closedWith).to.equal(undefined);
      expect(pinging.isOpen).to.equal(true);
      await pinging.ping();
    });
  });

  // --- 6. slow readers -----------------------------------------------------------------------

  describe('slow readers', () => {
    const MiB = 'y'.repeat(1024 * 1024);

    /** Publishes far more than kernel buffers can hold (64 MiB) to a client that does not read. */
    async function flood(node: BusNode, c: WsClient, address: string): Promise<void> {
      c.pause();
      for (let i = 0; i < 64; i++) {
        await node.publish(address, { i, fill: MiB });
        if (i % 8 === 0) c.send({ type: 'ping' }); // writing still works, and keeps it from idling
      }
      c.resume();
    }

    it('closes a client that stops reading with 1013 once its queue passes BRIDGE_MAX_BUFFERED_BYTES', async () => {
      const slow = await connect(main);
      const other = await connect(main);
      await slow.register('test.flood');
      await other.register('test.flood-other');
      await flood(main, slow, 'test.flood');
      const closed = await slow.waitClose(30_000);
      expect(closed.code).to.equal(1013);
      expect(slow.all((f) => f.address === 'test.flood').length).to.be.below(64);
      // Others are unaffected.
      await main.publish('test.flood-other', 'fine');
      expect((await other.nextRec('test.flood-other')).body).to.equal('fine');
    });

    it('releases what a client closed for not reading held: registrations and room names', async () => {
      const slow = await connect(main);
      const r = room('slow');
      const join = await slow.call<JoinReply>('chat.join', { room: r, user: 'sloth' });
      expect(join.resumeToken).to.be.a('string');
      await slow.register('test.flood2');
      await flood(main, slow, 'test.flood2');
      expect((await slow.waitClose(30_000)).code).to.equal(1013);

      // Its consumer is gone: a request to the address finds no handler (not a silent one).
      await waitFor(
        'the closed socket to release test.flood2 (NO_HANDLERS)',
        async () => (await main.request('test.flood2', 'anyone?', 300)).failureType === 'NO_HANDLERS',
        10_000,
        100,
      );
      // It left its rooms: the name is free for a new connection without the resume token.
      const again = await connect(main);
      await waitFor(
        'the name "sloth" to be free again',
        async () => (await again.request('chat.join', { room: r, user: 'sloth' })).type === 'rec',
        10_000,
        200,
      );
    });
  });

  // --- 7. chat through the bridge ------------------------------------------------------------

  describe('chat', () => {
    it('joins, sends, and delivers messages and presence to every socket in the room', async () => {
      const r = room('chat');
      const ana = await connect(chat);
      const bob = await connect(chat);
      for (const c of [ana, bob]) {
        await c.register(`chat.room.${r}`);
        await c.register(`chat.presence.${r}`);
      }

      const joinA = await ana.call<JoinReply>('chat.join', { room: r, user: 'ana' });
      expect(joinA).to.include({ room: r, lastSeq: 0, truncated: false });
      expect(joinA.epoch).to.be.a('string').and.not.equal('');
      expect(joinA.messages).to.deep.equal([]);
      expect(joinA.resumeToken)
        .to.be.a('string')
        .and.match(/^[A-Za-z0-9_-]{16,128}$/);
      const presenceA = await bob.next(
        (f) =>
          f.address === `chat.presence.${r}` &&
          JSON.stringify((f.body as { users: string[] }).users) === '["ana"]',
        'presence with ana',
      );
      expect(presenceA.body).to.deep.equal({ room: r, users: ['ana'] });

      const joinB = await bob.call<JoinReply>('chat.join', { room: r, user: 'bob' });
      expect(joinB.resumeToken).to.be.a('string').and.not.equal(joinA.resumeToken);
      const presenceAB = await ana.next(
        (f) =>
          f.address === `chat.presence.${r}` &&
          JSON.stringify((f.body as { users: string[] }).users) === '["ana","bob"]',
        'presence with ana and bob',
      );
      expect(presenceAB.body).to.deep.equal({ room: r, users: ['ana', 'bob'] });

      const ack = await ana.call<{ seq: number; id: string; ts: number }>('chat.send', {
        room: r,
        user: 'ana',
        clientMsgId: 'a-1',
        text: 'hello <b>bob</b>',
      });
      expect(ack.seq).to.equal(1);
      expect(ack.id).to.be.a('string');
      expect(ack.ts).to.be.a('number');
      const expected = {
        room: r,
        seq: 1,
        id: ack.id,
        clientMsgId: 'a-1',
        user: 'ana',
        text: 'hello <b>bob</b>',
        ts: ack.ts,
        epoch: joinA.epoch,
      };
      for (const c of [ana, bob]) {
        const rec = await c.nextRec(`chat.room.${r}`);
        expect(rec.body).to.deep.equal(expected);
      }

      // A retry is acked again, not published again.
      const retry = await ana.call<{ seq: number }>('chat.send', {
        room: r,
        user: 'ana',
        clientMsgId: 'a-1',
        text: 'hello <b>bob</b>',
      });
      expect(retry.seq).to.equal(1);
      const ack2 = await bob.call<{ seq: number }>('chat.send', {
        room: r,
        user: 'bob',
        clientMsgId: 'b-1',
        text: 'hi ana',
      });
      expect(ack2.seq).to.equal(2);
      const second = (await ana.nextRec(`chat.room.${r}`)).body as ChatMessage;
      expect(second).to.include({ seq: 2, user: 'bob', text: 'hi ana' });

      const joinC = await (await connect(chat)).call<JoinReply>('chat.join', { room: r, user: 'cat' });
      expect(joinC.lastSeq).to.equal(2);
      expect((joinC.messages as ChatMessage[]).map((m) => m.text)).to.deep.equal([
        'hello <b>bob</b>',
        'hi ana',
      ]);

      const bad = await ana.request('chat.send', { room: r, user: 'ana', clientMsgId: 'a-2', text: '' });
      expect(bad).to.include({ type: 'err', failureType: 'RECIPIENT_FAILURE', failureCode: 400 });
    });

    it('open mode: a name held in a room is refused (409) unless the resume token comes with it', async () => {
      const r = room('names');
      const first = await connect(chat);
      const join = await first.call<JoinReply>('chat.join', { room: r, user: 'zoe' });

      const second = await connect(chat);
      const taken = await second.request('chat.join', { room: r, user: 'zoe' });
      expect(taken).to.include({ type: 'err', failureType: 'RECIPIENT_FAILURE', failureCode: 409 });
      expect(taken.message).to.contain('zoe');
      // Another room, or another name, is fine.
      expect((await second.request('chat.join', { room: room('names'), user: 'zoe' })).type).to.equal('rec');
      expect((await second.request('chat.join', { room: r, user: 'zoey' })).type).to.equal('rec');
      // A forged token is no better than none.
      const forged = await second.request('chat.join', { room: r, user: 'zoe', resumeToken: 'A'.repeat(32) });
      expect(forged).to.include({ failureCode: 409 });

      const resumed = await second.call<JoinReply>('chat.join', {
        room: r,
        user: 'zoe',
        resumeToken: join.resumeToken,
      });
      expect(resumed).to.include({ room: r });
      // The resumed socket holds the name now: the first one is refused in turn.
      const back = await first.request('chat.join', { room: r, user: 'zoe' });
      expect(back).to.include({ failureCode: 409 });
    });

    it('frees the name when its socket closes, and presence shows the user gone', async () => {
      const r = room('leave');
      const observer = await connect(chat);
      await observer.register(`chat.presence.${r}`);
      const holder = await connect(chat);
      await holder.call('chat.join', { room: r, user: 'max' });
      await observer.next(
        (f) =>
          f.address === `chat.presence.${r}` &&
          JSON.stringify((f.body as { users: string[] }).users) === '["max"]',
        'presence with max',
      );
      const other = await connect(chat);
      expect(await other.request('chat.join', { room: r, user: 'max' })).to.include({ failureCode: 409 });

      await holder.close();
      const gone = await observer.next(
        (f) => f.address === `chat.presence.${r}` && (f.body as { users: string[] }).users.length === 0,
        'presence without max',
        10_000,
      );
      expect(gone.body).to.deep.equal({ room: r, users: [] });
      const joined = await other.call<JoinReply>('chat.join', { room: r, user: 'max' });
      expect(joined.room).to.equal(r);
      await observer.next(
        (f) =>
          f.address === `chat.presence.${r}` &&
          JSON.stringify((f.body as { users: string[] }).users) === '["max"]',
        'presence with max again',
      );
    });
  });

  // --- drain ---------------------------------------------------------------------------------

  describe('drain', () => {
    it('asks connected clients to reconnect, then closes them with 1012, when the node stops', async () => {
      const draining = await startNode('drain', {});
      const c = await connect(draining);
      await c.ping();
      const exited = draining.proc.exited;
      draining.proc.kill('SIGTERM');
      const reconnect = await c.next(
        (f) => f.address === CONTROL && (f.body as { kind?: string }).kind === 'reconnect',
        'the reconnect control frame',
        10_000,
      );
      // The drain spreads its requests itself: the client is asked to add no jitter.
      expect(reconnect.body).to.include({ kind: 'reconnect', jitterMs: 0 });
      expect((reconnect.body as { afterMs: unknown }).afterMs).to.be.a('number');
      expect((await c.waitClose(10_000)).code).to.equal(1012);
      expect((await exited).code).to.equal(0);
    });
  });
});
