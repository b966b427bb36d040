import { expect } from 'chai';
import { WebSocket } from 'ws';
import { ChatClient } from '../../messages-lib/src/index.js';
import type { BusNode } from '../helpers/bus-nodes.js';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import { closeAll, WsClient } from '../helpers/ws-client.js';
import { waitFor } from '../infra/proc.js';

/** One sample of the Prometheus text format: the value of `name{labels}` (labels as a subset), summed. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[3]);
      found = true;
    }
  }
  return found ? total : NaN;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

const TRACE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/**
 * `/metrics` on 2 real nodes (Hazelcast + FerretDB) while clients chat across them: the counters
 * a dashboard and the autoscaler read move by what happened, and trace context rides the bus.
 */
describe('metrics and trace context on 2 clustered nodes', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;
  const chats: ChatClient[] = [];
  const sockets: WsClient[] = [];

  before(async function () {
    this.timeout(300_000);
    fx = await ClusterFixture.start({ nodes: 2 });
    await fx.waitForSubscribers('chat.send', fx.nodes);
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.allSettled(chats.map((c) => c.close()));
    await closeAll(sockets);
    await fx?.stop();
  });

  it('exposes every metric family, with the state gauges up', async () => {
    const text = await scrape(fx.nodes[0]!.adminUrl);
    for (const family of [
      'switchboard_bridge_connections',
      'switchboard_bridge_frames_in_total',
      'switchboard_bridge_frames_out_total',
      'switchboard_chat_joins_total',
      'switchboard_chat_replayed_messages_total',
      'switchboard_chat_messages_in_total',
      'switchboard_chat_messages_out_total',
      'switchboard_bus_messages_out_total',
      'switchboard_bus_messages_in_total',
      'switchboard_bus_bytes_out_total',
      'switchboard_bus_request_duration_seconds',
      'switchboard_store_operation_duration_seconds',
      'switchboard_reconnect_requests_total',
      'switchboard_drain_duration_seconds',
      'switchboard_cluster_connected',
      'switchboard_cluster_nodes',
      'switchboard_store_connected',
      'process_cpu_seconds_total',
    ]) {
      expect(text, family).to.contain(`# TYPE ${family} `);
    }
    expect(sample(text, 'switchboard_cluster_connected')).to.equal(1);
    expect(sample(text, 'switchboard_store_connected')).to.equal(1);
    expect(sample(text, 'switchboard_cluster_nodes')).to.equal(2);
  });

  it('counts connections, joins, sends, publishes, bus traffic and store calls during traffic', async () => {
    const urls = fx.nodes.map((n) => n.httpUrl);
    const admins = fx.nodes.map((n) => n.adminUrl);
    const before = await Promise.all(admins.map(scrape));
    const sum = (texts: string[], name: string, labels?: Record<string, string>): number =>
      texts.map((t) => sample(t, name, labels)).reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);

    const ana = new ChatClient({ url: urls[0]!, user: 'ana', WebSocket: WebSocket as never });
    const bob = new ChatClient({ url: urls[1]!, user: 'bob', WebSocket: WebSocket as never });
    chats.push(ana, bob);
    await Promise.all([ana.connect(), bob.connect()]);
    const [ra, rb] = await Promise.all([ana.join('metrics'), bob.join('metrics')]);
    const sends = 30;
    // Ana (node 0) sends two thirds, bob (node 1) one third: unequal, so a round-robin split of the
    // sends over the nodes cannot pass for the one asserted below.
    for (let i = 0; i < sends; i++) await (i % 3 ? ra : rb).send(`m${i}`);
    await waitFor(
      'both clients to hold every message',
      () => ra.messages.length >= sends && rb.messages.length >= sends,
      15_000,
    );

    // An idempotent retry: acked again, counted as a duplicate, not published again.
    const { client: raw } = await WsClient.open(urls[0]!);
    sockets.push(raw);
    const send = { room: 'metrics', user: 'cy', clientMsgId: 'metrics-dup-1', text: 'once' };
    const first = await raw.call<{ seq: number }>('chat.send', send);
    const again = await raw.call<{ seq: number }>('chat.send', send);
    expect(again.seq).to.equal(first.seq);

    const during = await Promise.all(admins.map(scrape));
    expect(during.map((t) => sample(t, 'switchboard_bridge_connections'))).to.deep.equal([2, 1]);
    const delta = (name: string, labels?: Record<string, string>): number =>
      sum(during, name, labels) - sum(before, name, labels);
    // Every send is handled by exactly one node, so the cluster-wide sum is exact.
    expect(delta('switchboard_chat_messages_in_total', { result: 'stored' })).to.equal(sends + 1);
    expect(delta('switchboard_chat_messages_in_total', { result: 'duplicate' })).to.equal(1);
    expect(delta('switchboard_chat_messages_out_total')).to.equal(sends + 1);
    expect(delta('switchboard_chat_joins_total', { kind: 'first' })).to.equal(2);
    expect(
      delta('switchboard_store_operation_duration_seconds_count', { op: 'append', outcome: 'ok' }),
    ).to.equal(sends + 2);
    expect(delta('switchboard_bridge_frames_in_total')).to.be.at.least(sends + 4);
    expect(delta('switchboard_bridge_frames_out_total')).to.be.at.least(2 * sends);
    // Each client's sends are handled by the node it is connected to (the bridge prefers a local
    // chat.send consumer): ana's 20 and the raw socket's on node 0, bob's 10 on node 1.
    const onNode = (i: number, labels: Record<string, string>): number => {
      const count = (t: string): number => sample(t, 'switchboard_chat_messages_in_total', labels) || 0;
      return count(during[i]!) - count(before[i]!);
    };
    expect([onNode(0, { result: 'stored' }), onNode(1, { result: 'stored' })]).to.deep.equal([
      (sends * 2) / 3 + 1,
      sends / 3,
    ]);
    expect([onNode(0, { result: 'duplicate' }), onNode(1, { result: 'duplicate' })]).to.deep.equal([1, 0]);
    // Room publishes cross to the other node; appends from the node that does not own the room go
    // to its owner.
    expect(delta('switchboard_bus_messages_out_total', { kind: 'publish' })).to.be.at.least(sends);
    expect(delta('switchboard_bus_messages_in_total', { kind: 'publish' })).to.be.at.least(sends);
    expect(delta('switchboard_bus_messages_out_total', { kind: 'send' })).to.be.greaterThan(0);
    expect(delta('switchboard_bus_messages_in_total', { kind: 'reply' })).to.be.greaterThan(0);
    expect(delta('switchboard_bus_bytes_out_total')).to.be.greaterThan(0);
    expect(delta('switchboard_bus_request_duration_seconds_count', { outcome: 'ok' })).to.be.at.least(
      sends + 4,
    );
  });

  it('counts a resuming join and the messages it replays', async () => {
    // chat.join is answered by whichever node the bus routes it to: sum over both.
    const total = async (name: string, labels?: Record<string, string>): Promise<number> => {
      const texts = await Promise.all(fx.nodes.map((n) => scrape(n.adminUrl)));
      return texts.map((t) => sample(t, name, labels)).reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);
    };
    const resumes = await total('switchboard_chat_joins_total', { kind: 'resume' });
    const replayed = await total('switchboard_chat_replayed_messages_total');
    const { client } = await WsClient.open(fx.nodes[1]!.httpUrl);
    sockets.push(client);
    const reply = await client.call<{ messages: unknown[] }>('chat.join', {
      room: 'metrics',
      user: 'dee',
      since: 5,
    });
    expect(reply.messages.length).to.be.greaterThan(0);
    expect((await total('switchboard_chat_joins_total', { kind: 'resume' })) - resumes).to.equal(1);
    expect((await total('switchboard_chat_replayed_messages_total')) - replayed).to.equal(
      reply.messages.length,
    );
  });

  // Trace context lives on the bus: bridges do not hand it to recipients (docs/protocol.md), so
  // the room's publish is observed by a bus consumer on the node, as a span exporter would.
  const publishedHeaders = async (
    node: BusNode,
    address: string,
    n: number,
  ): Promise<Record<string, string>[]> => {
    const got = await waitFor(
      `${n} publishes on ${address}`,
      async () => {
        const r = (await node.received(address)) as { headers: Record<string, string> }[];
        return r.length >= n ? r : undefined;
      },
      10_000,
    );
    return got.map((r) => r.headers);
  };

  it('keeps a client traceparent through chat.send to the room publish on the other node', async () => {
    const [a, b] = fx.nodes;
    const { client: sender } = await WsClient.open(a!.httpUrl);
    sockets.push(sender);
    await b!.consumer('chat.room.traced', 'headers');
    await fx.waitForSubscribers('chat.room.traced', [b!]);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    await sender.call(
      'chat.send',
      { room: 'traced', user: 'eve', clientMsgId: 't-1', text: 'hi' },
      { traceparent },
    );
    const [headers] = await publishedHeaders(b!, 'chat.room.traced', 1);
    const got = TRACE.exec(String(headers?.traceparent));
    expect(got, `traceparent on the room message: ${JSON.stringify(headers)}`).to.not.equal(null);
    expect(got![1]).to.equal(traceId);
    // The publish is a child span of the client's: same trace, a new parent id.
    expect(got![2]).to.not.equal('00f067aa0ba902b7');
  });

  it('starts a trace for a frame without one, and replaces an invalid one', async () => {
    const [a] = fx.nodes;
    await a!.consumer('chat.room.traced2', 'headers');
    await fx.waitForSubscribers('chat.room.traced2', [a!]);
    const { client: sender } = await WsClient.open(a!.httpUrl);
    sockets.push(sender);
    const ids: string[] = [];
    for (const [i, headers] of [
      undefined,
      { traceparent: 'not-a-trace' },
      { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` },
    ].entries()) {
      await sender.call(
        'chat.send',
        { room: 'traced2', user: 'fay', clientMsgId: `n-${i}`, text: 'x' },
        headers,
      );
      const published = (await publishedHeaders(a!, 'chat.room.traced2', i + 1))[i];
      const got = TRACE.exec(String(published?.traceparent));
      expect(got, JSON.stringify(published)).to.not.equal(null);
      ids.push(got![1]!);
    }
    expect(new Set(ids).size, 'each send started its own trace').to.equal(3);
    expect(ids).to.not.include('0'.repeat(32));
  });
});
