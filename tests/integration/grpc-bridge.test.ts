import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { ClusterFixture } from '../helpers/cluster-fixture.js';
import type { BusNode } from '../helpers/bus-nodes.js';
import {
  bearer,
  chatClient,
  type Client,
  eventBusClient,
  healthClient,
  unaryCall,
} from '../helpers/grpc-clients.js';
import { freePort, waitFor } from '../infra/proc.js';

const SECRET = 'grpc-test-secret-grpc-test-secret-0123456789';
const MAX_QUEUE = 50;
const PERMISSIONS = JSON.stringify({
  inbound: [{ addressRegex: 'test\\..+' }],
  outbound: [{ addressRegex: 'test\\..+' }],
});

const text = (v: unknown) => ({ text: JSON.stringify(v) });
const target = (n: BusNode) => `127.0.0.1:${n.grpcPort}`;
let unique = 0;
const name = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${unique++}`;

interface StreamEnd {
  messages: Record<string, unknown>[];
  status: grpc.StatusObject;
}

/** Collects a server stream until `until` says stop (then cancels) or the stream ends; bounded. */
function collect(
  call: grpc.ClientReadableStream<Record<string, unknown>>,
  until: (messages: Record<string, unknown>[]) => boolean = () => false,
  timeoutMs = 20_000,
): Promise<StreamEnd> {
  return new Promise((resolve, reject) => {
    const messages: Record<string, unknown>[] = [];
    const timer = setTimeout(() => {
      call.cancel();
      reject(
        new Error(`stream: no end within ${timeoutMs} ms; got ${JSON.stringify(messages).slice(0, 500)}`),
      );
    }, timeoutMs);
    call.on('data', (m: Record<string, unknown>) => {
      messages.push(m);
      if (until(messages)) call.cancel();
    });
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => {
      clearTimeout(timer);
      resolve({ messages, status });
    });
  });
}

function headersOf(call: grpc.ClientReadableStream<unknown>): Promise<grpc.Metadata> {
  return new Promise((resolve) => call.once('metadata', resolve));
}

describe('gRPC bridge (2 clustered nodes)', function () {
  this.timeout(180_000);
  let fx: ClusterFixture;
  let n0: BusNode;
  let n1: BusNode;
  let bus0: Client;
  let bus1: Client;
  let chat0: Client;
  let chat1: Client;
  const extra: BusNode[] = [];
  const clients: grpc.Client[] = [];

  before(async () => {
    fx = await ClusterFixture.start({
      nodes: 2,
      env: {
        BRIDGE_PERMISSIONS: PERMISSIONS,
        GRPC_STREAM_MAX_QUEUE: String(MAX_QUEUE),
        GRPC_MAX_CONNECTION_AGE_MS: '1500',
        GRPC_MAX_CONNECTION_AGE_GRACE_MS: '1000',
        FILE_MAX_BYTES: '100000',
        BUS_REQUEST_TIMEOUT_MS: '5000',
      },
    });
    [n0, n1] = fx.nodes as [BusNode, BusNode];
    bus0 = eventBusClient(target(n0));
    bus1 = eventBusClient(target(n1));
    chat0 = chatClient(target(n0));
    chat1 = chatClient(target(n1));
    clients.push(bus0, bus1, chat0, chat1);
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.allSettled(extra.map((n) => n.proc.stop()));
    await fx?.stop();
  });

  describe('EventBusBridge', () => {
    it('Ping answers, naming the serving node in the sb-node header', async () => {
      const r = await unaryCall(bus0, 'ping', {});
      expect(r.error).to.equal(undefined);
      expect(r.headers?.get('sb-node')).to.deep.equal([n0.nodeId]);
    });

    it('Subscribe on one node receives Publish from the other, with the consumer id in header and messages', async () => {
      const address = name('test.pub');
      const call = bus1.subscribe({ address, messageBodyFormat: 'proto' }) as grpc.ClientReadableStream<
        Record<string, unknown>
      >;
      const md = await headersOf(call);
      const consumerId = md.get('vertx-event-bus-consumer-id')[0];
      expect(consumerId).to.be.a('string').and.not.equal('');
      await fx.waitForSubscribers(address, [n1]);
      const done = collect(call, (m) => m.length === 2);
      expect((await unaryCall(bus0, 'publish', { address, body: text({ n: 1 }) })).error).to.equal(undefined);
      expect(
        (await unaryCall(bus0, 'publish', { address, body: { binary: Buffer.from('"two"') } })).error,
      ).to.equal(undefined);
      const { messages } = await done;
      expect(messages.map((m) => m.consumerId)).to.deep.equal([consumerId, consumerId]);
      expect(messages[0]!.address).to.equal(address);
      expect(messages[0]!.body).to.deep.include({ value: 'proto' });
      const b0 = (messages[0]!.body as { proto: { structValue: { fields: { n: { numberValue: number } } } } })
        .proto;
      expect(b0.structValue.fields.n.numberValue).to.equal(1);
      const b1 = (messages[1]!.body as { proto: { stringValue: string } }).proto;
      expect(b1.stringValue).to.equal('two');
    });

    it('Unsubscribe ends the stream with OK; an unknown consumer id is NOT_FOUND', async () => {
      const address = name('test.unsub');
      const call = bus0.subscribe({ address }) as grpc.ClientReadableStream<Record<string, unknown>>;
      const consumerId = (await headersOf(call)).get('vertx-event-bus-consumer-id')[0];
      const done = collect(call);
      expect((await unaryCall(bus0, 'unsubscribe', { consumerId })).error).to.equal(undefined);
      expect((await done).status.code).to.equal(grpc.status.OK);
      const again = await unaryCall(bus0, 'unsubscribe', { consumerId });
      expect(again.error?.code).to.equal(grpc.status.NOT_FOUND);
      const unknown = await unaryCall(bus0, 'unsubscribe', { consumerId: 'no-such-consumer' });
      expect(unknown.error?.code).to.equal(grpc.status.NOT_FOUND);
      expect(unknown.error?.details).to.match(/no consumer/);
    });

    it('Request gets the reply from a consumer on the other node, in the asked format', async () => {
      const address = name('test.echo');
      await n1.consumer(address, 'echo');
      await fx.waitForSubscribers(address, [n1]);
      const r = await unaryCall<{ body: { text: string }; address: string }>(bus0, 'request', {
        address,
        body: text({ hello: 'world' }),
        replyBodyFormat: 'text',
        headers: { app: 'x', 'sb-node': 'forged' },
      });
      expect(r.error).to.equal(undefined);
      const reply = JSON.parse(r.value!.body.text) as {
        from: string;
        body: unknown;
        headers: Record<string, string>;
      };
      expect(reply.from).to.equal(n1.nodeId);
      expect(reply.body).to.deep.equal({ hello: 'world' });
      expect(reply.headers.app).to.equal('x');
      expect(reply.headers['sb-node']).to.equal(n0.nodeId); // client-sent sb-* headers are dropped
    });

    it('Send delivers to one consumer; with a timeout it reports what happened', async () => {
      const address = name('test.send');
      await n1.consumer(address, 'record');
      await fx.waitForSubscribers(address, [n1]);
      expect((await unaryCall(bus0, 'send', { address, body: text('a') })).error).to.equal(undefined);
      await waitFor('the send to arrive', async () => (await n1.received(address)).length === 1, 10_000);
      expect(await n1.received(address)).to.deep.equal(['a']);
      // a `record` consumer never replies: Send with a timeout waits for the reply and says TIMEOUT
      const timed = await unaryCall(bus0, 'send', {
        address,
        body: text('b'),
        timeout: { seconds: 0, nanos: 300e6 },
      });
      expect(timed.error?.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      expect(timed.trailers?.get('vertx-failure-type')).to.deep.equal(['TIMEOUT']);
    });

    it('maps NO_HANDLERS to NOT_FOUND and RECIPIENT_FAILURE to UNKNOWN keeping the code in trailers', async () => {
      const none = await unaryCall(bus0, 'request', { address: name('test.nobody'), body: text(1) });
      expect(none.error?.code).to.equal(grpc.status.NOT_FOUND);
      const address = name('test.fail');
      await n1.consumer(address, 'fail');
      await fx.waitForSubscribers(address, [n1]);
      const failed = await unaryCall(bus0, 'request', { address, body: text(1) });
      expect(failed.error?.code).to.equal(grpc.status.UNKNOWN);
      expect(failed.error?.details).to.match(/refused by/);
      expect(failed.trailers?.get('vertx-failure-code')).to.deep.equal(['418']);
      expect(failed.trailers?.get('vertx-failure-type')).to.deep.equal(['RECIPIENT_FAILURE']);
      const silent = name('test.silent');
      await n1.consumer(silent, 'silent');
      await fx.waitForSubscribers(silent, [n1]);
      const timedOut = await unaryCall(bus0, 'request', {
        address: silent,
        body: text(1),
        timeout: { nanos: 200e6 },
      });
      expect(timedOut.error?.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    });

    it('refuses what the permissions do not allow, and bad input, with clear statuses', async () => {
      const denied = await unaryCall(bus0, 'publish', { address: 'secret.stuff', body: text(1) });
      expect(denied.error?.code).to.equal(grpc.status.PERMISSION_DENIED);
      const deniedSub = bus0.subscribe({ address: 'secret.stuff' }) as grpc.ClientReadableStream<
        Record<string, unknown>
      >;
      expect((await collect(deniedSub)).status.code).to.equal(grpc.status.PERMISSION_DENIED);
      const cases: ['publish' | 'send' | 'request' | 'unsubscribe', unknown, RegExp][] = [
        ['publish', { body: text(1) }, /address: required/],
        ['publish', { address: 'test.x', body: { text: '{not json' } }, /body.text: not valid JSON/],
        ['publish', { address: 'test.x', body: { binary: Buffer.from([0xff, 0x00]) } }, /not valid JSON/],
        ['publish', { address: 'test.has space', body: text(1) }, /address/],
        ['publish', { address: `test.${'x'.repeat(300)}`, body: text(1) }, /limit is 200/],
        ['send', { address: 'test.x', body: text(1), headers: { timeout: 'soon' } }, /headers.timeout/],
        ['request', { address: 'test.x', body: text(1), timeout: { seconds: -1 } }, /timeout/],
        ['unsubscribe', {}, /consumer_id: required/],
      ];
      for (const [method, req, message] of cases) {
        const r = await unaryCall(bus0, method, req);
        expect(r.error?.code, `${method} ${JSON.stringify(req).slice(0, 80)}`).to.equal(
          grpc.status.INVALID_ARGUMENT,
        );
        expect(r.error?.details).to.match(message);
      }
      // bytes that are not a PublishOp at all: the server answers and stays up
      const raw = new grpc.Client(target(n0), grpc.credentials.createInsecure());
      clients.push(raw);
      const garbage = await new Promise<grpc.ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(
          '/vertx.event.v1alpha.EventBusBridge/Publish',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from([0x0a, 0xff, 0xff, 0xff]),
          (err) => resolve(err),
        ),
      );
      expect(garbage?.code).to.be.oneOf([grpc.status.INTERNAL, grpc.status.INVALID_ARGUMENT]);
      expect((await unaryCall(bus0, 'ping', {})).error).to.equal(undefined);
    });

    it('a Subscribe client that stops reading ends with RESOURCE_EXHAUSTED; the server queue stays bounded', async () => {
      const address = name('test.flood');
      const call = bus1.subscribe({ address }) as grpc.ClientReadableStream<Record<string, unknown>>;
      await headersOf(call);
      await fx.waitForSubscribers(address, [n1]);
      // a paused stream reads nothing past its small buffer, so HTTP/2 flow control pushes back
      const done = collect(call, () => false, 60_000);
      call.pause();
      const total = 600;
      const big = 'x'.repeat(16 * 1024);
      for (let i = 0; i < total; i += 20) {
        await Promise.all(
          Array.from({ length: 20 }, (_, j) =>
            unaryCall(bus0, 'publish', { address, body: text({ i: i + j, big }) }),
          ),
        );
      }
      await waitFor(
        'the slow subscriber to be cut off',
        async () => (await n1.grpcStats()).subscriptions === 0,
        20_000,
      );
      const stats = await n1.grpcStats();
      expect(stats.queued).to.equal(0);
      // now read what was already on the wire: fewer than published, then RESOURCE_EXHAUSTED
      call.resume();
      const rest = await done;
      expect(rest.status.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      expect(rest.status.details).to.match(new RegExp(`more than ${MAX_QUEUE} messages`));
      expect(rest.messages.length).to.be.below(total);
    });
  });

  describe('Chat', () => {
    it('Send is acked after storage and idempotent by client_msg_id; History returns the messages', async () => {
      const room = name('r');
      const first = await unaryCall<{ seq: number; id: string }>(chat0, 'send', {
        room,
        user: 'ann',
        clientMsgId: 'm-1',
        text: 'hello',
      });
      expect(first.error).to.equal(undefined);
      expect(first.value!.seq).to.equal(1);
      const retry = await unaryCall<{ seq: number; id: string }>(chat1, 'send', {
        room,
        user: 'ann',
        clientMsgId: 'm-1',
        text: 'hello',
      });
      expect(retry.value).to.deep.equal(first.value);
      const history = await unaryCall<{ messages: { seq: number; text: string }[] }>(chat1, 'history', {
        room,
      });
      expect(history.value!.messages.map((m) => [m.seq, m.text])).to.deep.equal([[1, 'hello']]);
      const bad = await unaryCall(chat0, 'send', {
        room: 'bad room!',
        user: 'ann',
        clientMsgId: 'x',
        text: 'x',
      });
      expect(bad.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      const blank = await unaryCall(chat0, 'send', { room, user: 'ann', clientMsgId: 'm-2' });
      expect(blank.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(blank.trailers?.get('vertx-failure-code')).to.deep.equal(['400']);
    });

    it('Join replays exactly the missed messages, then streams live ones, each with its seq', async () => {
      const room = name('r');
      for (let i = 1; i <= 5; i++) {
        const r = await unaryCall(chat0, 'send', { room, user: 'ann', clientMsgId: `c-${i}`, text: `t${i}` });
        expect(r.error).to.equal(undefined);
      }
      const call = chat1.join({ room, user: 'bob', since: 2 }) as grpc.ClientReadableStream<
        Record<string, unknown>
      >;
      const events: Record<string, unknown>[] = [];
      let live = false;
      let sendFailed: unknown;
      const done = collect(call, (m) => {
        events.splice(0, events.length, ...m);
        const msgs = m.filter((e) => e.message);
        if (!live && msgs.length === 3) {
          live = true;
          void unaryCall(chat0, 'send', { room, user: 'ann', clientMsgId: 'c-6', text: 't6' })
            .then(() => unaryCall(chat0, 'send', { room, user: 'ann', clientMsgId: 'c-7', text: 't7' }))
            .catch((err: unknown) => {
              sendFailed = err;
              call.cancel();
            });
        }
        return msgs.length === 5;
      });
      const { messages } = await done;
      if (sendFailed) throw sendFailed;
      expect(messages[0]!.joined).to.deep.include({ room, lastSeq: 5, node: n1.nodeId });
      const msgs = messages.filter((e) => e.message) as {
        seq: number;
        message: { seq: number; text: string };
      }[];
      expect(msgs.map((e) => e.seq)).to.deep.equal([3, 4, 5, 6, 7]);
      expect(msgs.map((e) => e.message.text)).to.deep.equal(['t3', 't4', 't5', 't6', 't7']);
      expect(msgs.map((e) => e.message.seq)).to.deep.equal([3, 4, 5, 6, 7]);
    });

    it('Upload is size-limited; an upload round-trips through Download', async () => {
      const upload = (chunks: unknown[]) =>
        new Promise<{ err: grpc.ServiceError | null; ref?: { id: string; size: number } }>((resolve) => {
          const call = (
            chat0.upload as (
              cb: (e: grpc.ServiceError | null, r?: unknown) => void,
            ) => grpc.ClientWritableStream<unknown>
          )((err, ref) => resolve({ err, ref: ref as { id: string; size: number } }));
          for (const c of chunks) call.write(c);
          call.end();
        });
      const data = Buffer.alloc(30_000, 7);
      const ok = await upload([
        { info: { name: 'a.bin', contentType: 'application/octet-stream' } },
        { data },
        { data },
      ]);
      expect(ok.err).to.equal(null);
      expect(ok.ref!.size).to.equal(60_000);
      const big = await upload([
        { info: { name: 'big.bin' } },
        ...Array.from({ length: 5 }, () => ({ data })),
      ]);
      expect(big.err?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(big.err?.details).to.match(/exceeds the limit of 100000 bytes/);
      const noInfo = await upload([{ data }]);
      expect(noInfo.err?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      const down = await collect(
        chat1.download({ id: ok.ref!.id }) as grpc.ClientReadableStream<Record<string, unknown>>,
      );
      expect(down.status.code).to.equal(grpc.status.OK);
      expect((down.messages[0]!.info as { size: number }).size).to.equal(60_000);
      const bytes = Buffer.concat(down.messages.slice(1).map((m) => m.data as Buffer));
      expect(bytes.equals(Buffer.concat([data, data]))).to.equal(true);
      const missing = await collect(
        chat1.download({ id: 'nope' }) as grpc.ClientReadableStream<Record<string, unknown>>,
      );
      expect(missing.status.code).to.equal(grpc.status.INVALID_ARGUMENT);
    });
  });

  describe('auth, health, max connection age', () => {
    it('with AUTH_TOKEN_SECRET, calls need a valid bearer token and act for its subject', async () => {
      const node = await fx.startNode('auth', { AUTH_TOKEN_SECRET: SECRET });
      extra.push(node);
      const chat = chatClient(target(node));
      const bus = eventBusClient(target(node));
      clients.push(chat, bus);
      const room = name('r');
      const req = { room, user: 'mallory', clientMsgId: 'a-1', text: 'hi' };
      const missing = await unaryCall(chat, 'send', req);
      expect(missing.error?.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(missing.error?.details).to.match(/not_logged_in/);
      const bad = await unaryCall(chat, 'send', req, bearer('not-a-jwt'));
      expect(bad.error?.code).to.equal(grpc.status.UNAUTHENTICATED);
      const subMissing = await collect(
        bus.subscribe({ address: 'test.x' }) as grpc.ClientReadableStream<Record<string, unknown>>,
      );
      expect(subMissing.status.code).to.equal(grpc.status.UNAUTHENTICATED);
      const token = await new SignJWT({ rooms: [room] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(SECRET));
      const ok = await unaryCall(chat, 'send', req, bearer(token));
      expect(ok.error).to.equal(undefined);
      const h = await unaryCall<{ messages: { user: string }[] }>(chat, 'history', { room }, bearer(token));
      expect(h.value!.messages.map((m) => m.user)).to.deep.equal(['alice']);
      const otherRoom = await unaryCall(chat, 'send', { ...req, room: 'elsewhere' }, bearer(token));
      expect(otherRoom.error?.code).to.equal(grpc.status.PERMISSION_DENIED);
    });

    it('health is SERVING while the node runs, and reflection-free clients see NOT_FOUND for unknown services', async () => {
      const health = healthClient(target(n0));
      clients.push(health);
      const r = await unaryCall<{ status: string }>(health, 'check', { service: '' });
      expect(r.value!.status).to.equal('SERVING');
      const chat = await unaryCall<{ status: string }>(health, 'check', {
        service: 'switchboard.chat.v1.Chat',
      });
      expect(chat.value!.status).to.equal('SERVING');
      const unknown = await unaryCall(health, 'check', { service: 'no.Such' });
      expect(unknown.error?.code).to.equal(grpc.status.NOT_FOUND);
    });

    it('health turns NOT_SERVING when a node stops', async () => {
      const node = await fx.startNode('stopping');
      const health = healthClient(target(node));
      clients.push(health);
      const watch = health.watch({ service: '' }) as grpc.ClientReadableStream<Record<string, unknown>>;
      const first = new Promise((resolve) => watch.once('data', resolve));
      const seen = collect(watch, (m) => m.some((x) => x.status === 'NOT_SERVING'));
      await first;
      await node.proc.stop();
      const { messages } = await seen;
      expect(messages[0]!.status).to.equal('SERVING');
      expect(messages.at(-1)!.status).to.equal('NOT_SERVING');
    });

    it('drain: Join and Subscribe streams end UNAVAILABLE with a `reconnect` trailer; the node exits 0', async () => {
      const node = await fx.startNode('draining');
      const chatC = chatClient(target(node));
      const busC = eventBusClient(target(node));
      clients.push(chatC, busC);
      const join = chatC.join({ room: name('drain'), user: 'dee' }) as grpc.ClientReadableStream<
        Record<string, unknown>
      >;
      const sub = busC.subscribe({ address: 'test.drain' }) as grpc.ClientReadableStream<
        Record<string, unknown>
      >;
      const joined = new Promise((resolve) => join.once('data', resolve));
      const joinEnd = collect(join);
      const subEnd = collect(sub);
      await joined;
      await fx.waitForSubscribers('test.drain', [node], [node]);
      node.proc.kill('SIGTERM');
      const [j, s] = await Promise.all([joinEnd, subEnd]);
      for (const [what, end] of [
        ['Join', j],
        ['Subscribe', s],
      ] as const) {
        expect(end.status.code, `${what} status`).to.equal(grpc.status.UNAVAILABLE);
        expect(end.status.metadata.get('reconnect'), `${what} reconnect trailer`).to.deep.equal(['true']);
      }
      expect((await node.proc.exited).code, 'exit code').to.equal(0);
    });

    it('max connection age: a long-lived client ends up on a node started after it connected', async () => {
      const lateGrpcPort = await freePort();
      const endpoints: string[] = [target(n0)];
      class ListResolver implements grpc.experimental.Resolver {
        constructor(
          _target: grpc.experimental.GrpcUri,
          private readonly listener: grpc.experimental.ResolverListener,
        ) {}
        updateResolution(): void {
          const list = endpoints.map((e) => {
            const [host, port] = e.split(':');
            return { addresses: [{ host: host!, port: Number(port) }] };
          });
          setImmediate(() => this.listener(grpc.experimental.statusOrFromValue(list), {}, null, ''));
        }
        destroy(): void {}
        static getDefaultAuthority(t: grpc.experimental.GrpcUri): string {
          return t.path;
        }
      }
      // a name whose address list changes, like a headless Service's DNS when a pod is added
      grpc.experimental.registerResolver('sbtest', ListResolver);
      const client = eventBusClient('sbtest:///switchboard', {
        'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      });
      clients.push(client);
      const servedBy = async () => (await unaryCall(client, 'ping', {})).headers?.get('sb-node')[0];
      expect(await servedBy()).to.equal(n0.nodeId);
      const late = await fx.startNode('late', { GRPC_PORT: String(lateGrpcPort) });
      extra.push(late);
      endpoints.push(`127.0.0.1:${lateGrpcPort}`);
      // without re-resolution the client would stay on n0 forever; max connection age makes it
      // reconnect, re-resolve, and round-robin onto the new node
      await waitFor(
        'a call served by the node started later',
        async () => (await servedBy()) === late.nodeId,
        30_000,
      );
    });
  });
});
