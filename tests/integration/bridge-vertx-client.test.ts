import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BusNode } from '../helpers/bus-nodes.js';
import { waitFor } from '../infra/proc.js';

const require = createRequire(import.meta.url);

interface VertxMessage {
  body: unknown;
  headers?: Record<string, string>;
  replyAddress?: string;
  reply?: (body: unknown) => void;
}
interface VertxFailure {
  failureCode: number;
  failureType: string;
  message: string;
}
type Callback = (err: VertxFailure | null, msg: VertxMessage) => void;
interface VertxEventBus {
  onopen: (() => void) | null;
  onclose: ((e: unknown) => void) | null;
  onerror: (e: unknown) => void;
  state: number;
  send(address: string, body: unknown, headers?: Record<string, string>, cb?: Callback): void;
  publish(address: string, body: unknown, headers?: Record<string, string>): void;
  registerHandler(address: string, headers: Record<string, string>, cb: Callback): void;
  unregisterHandler(address: string, headers: Record<string, string>, cb: Callback): void;
  close(): void;
}

// The unmodified npm client, as a browser app would load it (it brings sockjs-client itself).
const EventBus = require('@vertx/eventbus-bridge-client.js') as new (url: string) => VertxEventBus;

function request(eb: VertxEventBus, address: string, body: unknown): Promise<VertxMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply from ${address}`)), 10_000);
    eb.send(address, body, {}, (err, msg) => {
      clearTimeout(timer);
      if (err) reject(Object.assign(new Error(err.message), err));
      else resolve(msg);
    });
  });
}

/** Compatibility: `@vertx/eventbus-bridge-client.js` + `sockjs-client` against our `/eventbus`. */
describe('Vert.x eventbus-bridge-client.js over SockJS', function () {
  this.timeout(60_000);
  let dir: string;
  let node: BusNode;
  let eb: VertxEventBus;
  const errors: unknown[] = [];
  const unhandled: unknown[] = [];
  const warn = console.warn;

  before(async () => {
    // The client reports frames it cannot place (unknown addresses or types) with console.warn.
    console.warn = (...args: unknown[]) => void unhandled.push(args);
    dir = await mkdtemp(join(tmpdir(), 'sb-vertx-'));
    node = await BusNode.start('vertx-compat', {
      DATA_DIR: dir,
      BRIDGE_PERMISSIONS: JSON.stringify({
        inbound: [{ addressRegex: 'compat\\..+' }],
        outbound: [{ addressRegex: 'compat\\..+' }],
      }),
    });
    await node.consumer('compat.echo', 'echo');
    await node.consumer('compat.fail', 'fail');
    await node.consumer('compat.sink', 'record');
    eb = new EventBus(`${node.httpUrl}/eventbus`);
    eb.onerror = (e) => errors.push(e);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('SockJS did not open')), 15_000);
      eb.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  });

  after(async () => {
    console.warn = warn;
    eb?.close();
    await node?.proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('sends with a reply', async () => {
    const reply = await request(eb, 'compat.echo', { hello: 'vertx' });
    expect(reply.body).to.deep.include({ body: { hello: 'vertx' } });
  });

  it('gets a reply failure with its code', async () => {
    const err = (await request(eb, 'compat.fail', 1).catch((e: unknown) => e)) as VertxFailure;
    expect(err.failureType).to.equal('RECIPIENT_FAILURE');
    expect(err.failureCode).to.equal(418);
  });

  it('gets NO_HANDLERS for an address without consumers', async () => {
    const err = (await request(eb, 'compat.nobody', 1).catch((e: unknown) => e)) as VertxFailure;
    expect(err.failureType).to.equal('NO_HANDLERS');
  });

  it('publishes to the bus', async () => {
    eb.publish('compat.sink', { n: 1 });
    await waitFor(
      'the node to receive the publish',
      async () => (await node.received('compat.sink')).length === 1,
      10_000,
    );
    expect(await node.received('compat.sink')).to.deep.equal([{ n: 1 }]);
  });

  it('registers a handler, receives publishes, and stops after unregistering', async () => {
    const got: unknown[] = [];
    const handler: Callback = (err, msg) => {
      if (!err) got.push(msg.body);
    };
    eb.registerHandler('compat.news', {}, handler);
    // The registration is asynchronous: publish until the first one arrives.
    await waitFor(
      'a publish to reach the Vert.x client',
      async () => {
        await node.publish('compat.news', 'ping');
        return got.length > 0;
      },
      10_000,
      100,
    );
    got.length = 0;
    await node.publish('compat.news', { headline: 'hello' });
    await waitFor(
      'the headline',
      () => got.some((b) => JSON.stringify(b) === '{"headline":"hello"}'),
      10_000,
    );
    eb.unregisterHandler('compat.news', {}, handler);
    await new Promise((r) => setTimeout(r, 300));
    got.length = 0;
    await node.publish('compat.news', 'after');
    await new Promise((r) => setTimeout(r, 300));
    expect(got).to.deep.equal([]);
  });

  it('chats through the default chat permissions', async () => {
    const join = await request(eb, 'chat.join', { room: 'vertx', user: 'vx' });
    expect(join.body).to.deep.include({ room: 'vertx', lastSeq: 0 });
    const ack = await request(eb, 'chat.send', {
      room: 'vertx',
      user: 'vx',
      clientMsgId: 'v1',
      text: 'from vert.x',
    });
    expect(ack.body).to.deep.include({ seq: 1 });
  });

  it('saw no error frames and no frames it could not place', () => {
    expect(errors).to.deep.equal([]);
    expect(unhandled).to.deep.equal([]);
  });
});
