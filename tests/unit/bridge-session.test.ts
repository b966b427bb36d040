import { expect } from 'chai';
import { BridgeSession, type BridgeTransport } from '../../backend/src/bridge/ws/bridge-session.js';
import type { BridgeEvent, BridgeEventType } from '../../backend/src/bridge/core/hook.js';
import { bridgeOptions } from '../../backend/src/bridge/core/options.js';
import type { OutboundFrame } from '../../backend/src/bridge/ws/outbound-frame.js';
import { runSession } from '../../backend/src/bridge/ws/ws-endpoint.js';
import { StandaloneClusterManager } from '../../backend/src/cluster/standalone.js';
import { ClusteredEventBus } from '../../backend/src/eventbus/index.js';

const turn = () => new Promise((r) => setImmediate(r));

/** A transport that records what the session writes, one entry per write call. */
function recordingTransport(extensions = false): BridgeTransport & { writes: string[][] } {
  const writes: string[][] = [];
  return {
    writes,
    send: (text) => void writes.push([text]),
    sendFrames: (first: OutboundFrame, more: readonly OutboundFrame[] | undefined) => {
      writes.push([first, ...(more ?? [])].map((f) => f.text));
      return true;
    },
    bufferedAmount: () => 0,
    close: () => {},
    extensions,
  };
}

describe('bridge session (unit)', () => {
  let bus: ClusteredEventBus;
  beforeEach(async () => {
    bus = new ClusteredEventBus({ cluster: new StandaloneClusterManager() });
    await bus.start();
  });
  afterEach(async () => {
    await bus.close();
  });

  function session(hookEvents?: BridgeEventType[], extensions = false) {
    const seen: BridgeEventType[] = [];
    const transport = recordingTransport(extensions);
    const options = bridgeOptions({
      inbound: [{ addressRegex: 'test\\..+' }],
      outbound: [{ addressRegex: 'test\\..+' }],
      hook: (event: BridgeEvent) => {
        seen.push(event.type);
        return true;
      },
      ...(hookEvents ? { hookEvents } : {}),
    });
    const s = new BridgeSession(bus, transport, options, undefined, '127.0.0.1');
    return { s, seen, transport };
  }

  async function registerAndPublish(s: BridgeSession, count: number): Promise<void> {
    await s.onFrame(JSON.stringify({ type: 'register', address: 'test.a' }));
    await turn();
    for (let i = 0; i < count; i++) bus.publish('test.a', { i });
    await turn();
    await turn();
  }

  it('calls the hook for every event by default, RECEIVE included', async () => {
    const { s, seen } = session();
    await registerAndPublish(s, 2);
    expect(seen.filter((t) => t === 'RECEIVE')).to.have.length(2);
    expect(seen).to.include('REGISTER');
    await s.close();
  });

  it('with hookEvents, calls the hook only for those, and still delivers the rest', async () => {
    const { s, seen, transport } = session(['REGISTER']);
    await registerAndPublish(s, 2);
    expect(seen).to.deep.equal(['REGISTER']);
    const texts = transport.writes.flat().map((t) => JSON.parse(t) as { address?: string; body?: unknown });
    expect(texts.filter((f) => f.address === 'test.a').map((f) => f.body)).to.deep.equal([
      { i: 0 },
      { i: 1 },
    ]);
    await s.close();
  });

  it('writes the messages of one turn to a socket in one write, in order', async () => {
    const { s, transport } = session();
    await s.onFrame(JSON.stringify({ type: 'register', address: 'test.a' }));
    await turn();
    await turn();
    transport.writes.length = 0;
    for (let i = 0; i < 3; i++) bus.publish('test.a', { i });
    await turn();
    await turn();
    expect(transport.writes).to.have.length(1);
    expect(transport.writes[0]!.map((t) => (JSON.parse(t) as { body: unknown }).body)).to.deep.equal([
      { i: 0 },
      { i: 1 },
      { i: 2 },
    ]);
    bus.publish('test.a', { i: 3 });
    await turn();
    await turn();
    expect(transport.writes).to.have.length(2);
    expect(transport.writes[1]).to.have.length(1);
    await s.close();
  });

  it('answers every ping with a pong, however it is spelled, and tells a hook that asks', async () => {
    for (const hookEvents of [undefined, ['REGISTER' as const]]) {
      const { s, seen, transport } = session(hookEvents, true);
      await s.onFrame('{"type":"ping"}');
      await s.onFrame('{ "type": "ping" }');
      await turn();
      expect(transport.writes.flat()).to.deep.equal(['{"type":"pong"}', '{"type":"pong"}']);
      expect(seen.filter((t) => t === 'SOCKET_PING')).to.have.length(hookEvents ? 0 : 2);
      await s.close();
    }
  });
  it('answers a ping sent behind a frame still being handled only after that frame, in order', async () => {
    // A hook that takes its time refuses the register: its err frame must come before the pong,
    // as a client may take a pong to mean that every frame sent before its ping was handled.
    const transport = recordingTransport(true);
    const options = bridgeOptions({
      inbound: [{ addressRegex: 'test\\..+' }],
      outbound: [{ addressRegex: 'test\\..+' }],
      hook: async (event: BridgeEvent) => {
        if (event.type !== 'REGISTER') return true;
        await new Promise((r) => setTimeout(r, 20));
        return false;
      },
      // Pings not hooked, so they may take the short way.
      hookEvents: ['SOCKET_CREATED', 'REGISTER'],
    });
    const s = new BridgeSession(bus, transport, options, undefined, '127.0.0.1');
    const run = runSession(s, new Set(), undefined, transport, options.log);
    run.onFrame('{"type":"ping"}'); // behind the open
    await new Promise((r) => setTimeout(r, 10));
    run.onFrame('{"type":"ping"}'); // nothing ahead of it: answered at once
    run.onFrame(JSON.stringify({ type: 'register', address: 'test.slow' }));
    run.onFrame('{"type":"ping"}'); // behind the slow register
    const deadline = Date.now() + 2_000;
    while (transport.writes.flat().length < 5 && Date.now() < deadline) await turn();
    const types = transport.writes.flat().map((t) => (JSON.parse(t) as { type: string }).type);
    expect(types).to.deep.equal(['rec', 'pong', 'pong', 'err', 'pong']); // rec: the hello
    run.onClose();
    await s.close();
  });

  describe('a refusal names the refused frame', () => {
    /** What the session writes for `frame`, parsed. */
    async function answers(s: BridgeSession, transport: { writes: string[][] }, frame: unknown) {
      transport.writes.length = 0;
      await s.onFrame(typeof frame === 'string' ? frame : JSON.stringify(frame));
      await turn();
      await turn();
      return transport.writes.flat().map((t) => JSON.parse(t) as Record<string, unknown>);
    }

    it('on the raw endpoint: its address and replyAddress as sent, in `refused`, and nothing else', async () => {
      const { s, transport } = session(undefined, true);
      const denied = { type: 'err', body: 'access_denied' };
      expect(
        await answers(s, transport, {
          type: 'send',
          address: 'other.a',
          body: { secret: 1 },
          headers: { h: 'v' },
          replyAddress: 'r1',
        }),
      ).to.deep.equal([{ ...denied, refused: { address: 'other.a', replyAddress: 'r1' } }]);
      expect(await answers(s, transport, { type: 'register', address: 'other.b' })).to.deep.equal([
        { ...denied, refused: { address: 'other.b' } },
      ]);
      expect(await answers(s, transport, { type: 'unregister', address: 'other.c' })).to.deep.equal([
        { ...denied, refused: { address: 'other.c' } },
      ]);
      expect(await answers(s, transport, { address: 'test.a', replyAddress: 'r2' })).to.deep.equal([
        { type: 'err', body: 'missing_type', refused: { address: 'test.a', replyAddress: 'r2' } },
      ]);
      await s.close();
    });

    it('only strings of at most the address limit, so the err frame stays small', async () => {
      const { s, transport } = session(undefined, true);
      // `5` is read as the address "5" (denied), but the client did not send that string.
      expect(await answers(s, transport, { type: 'publish', address: 5, body: 1 })).to.deep.equal([
        { type: 'err', body: 'access_denied' },
      ]);
      const [badReply] = await answers(s, transport, {
        type: 'send',
        address: 'test.a',
        replyAddress: { r: 1 },
      });
      expect(badReply).to.include({ type: 'err', body: 'invalid_frame' });
      expect(badReply!.refused).to.deep.equal({ address: 'test.a' });
      const long = `test.${'a'.repeat(196)}`;
      expect(await answers(s, transport, { type: 'send', address: long, replyAddress: 'r3' })).to.deep.equal([
        { type: 'err', body: 'max_address_length_reached', refused: { replyAddress: 'r3' } },
      ]);
      const exactly200 = 'r'.repeat(200);
      expect(
        await answers(s, transport, { type: 'send', address: 'test.a', replyAddress: exactly200 }),
      ).to.deep.equal([
        {
          type: 'err',
          body: 'invalid_reply_address',
          refused: { address: 'test.a', replyAddress: exactly200 },
        },
      ]);
      expect(
        await answers(s, transport, { type: 'send', address: 'test.a', replyAddress: `${exactly200}r` }),
      ).to.deep.equal([{ type: 'err', body: 'invalid_reply_address', refused: { address: 'test.a' } }]);
      expect(await answers(s, transport, '[1]')).to.deep.equal([
        { type: 'err', body: 'invalid_json', message: 'a frame is a JSON object' },
      ]);
      await s.close();
    });

    it('not over SockJS: Vert.x frames, which name nothing', async () => {
      const { s, transport } = session(undefined, false);
      expect(
        await answers(s, transport, { type: 'send', address: 'other.a', body: 1, replyAddress: 'r1' }),
      ).to.deep.equal([{ type: 'err', body: 'access_denied' }]);
      expect(await answers(s, transport, { type: 'register', address: 'other.b' })).to.deep.equal([
        { type: 'err', body: 'access_denied' },
      ]);
      await s.close();
    });

    it("a reply failure keeps Vert.x's shape: addressed to the replyAddress, no body", async () => {
      const { s, transport } = session(undefined, true);
      const [failure] = await answers(s, transport, {
        type: 'send',
        address: 'test.nobody',
        body: 1,
        replyAddress: 'r1',
      });
      expect(Object.keys(failure!).sort()).to.deep.equal([
        'address',
        'failureCode',
        'failureType',
        'message',
        'type',
      ]);
      expect(failure).to.include({ type: 'err', address: 'r1', failureType: 'NO_HANDLERS' });
      await s.close();
    });
  });
});
