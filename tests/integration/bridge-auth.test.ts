import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JWTPayload, SignJWT, UnsecuredJWT } from 'jose';
import { BusNode, type ReplyResult } from '../helpers/bus-nodes.js';
import { closeAll, type Frame, isRefusal, WsClient } from '../helpers/ws-client.js';

/**
 * The WebSocket bridge in token mode (`AUTH_TOKEN_SECRET` set): who may connect, who the user is,
 * which rooms and addresses a token opens, and browser origins (docs/protocol.md, Identity).
 */

const SECRET = 'bridge-auth-test-secret-0123456789-abcdef';
const OTHER_SECRET = 'some-other-secret-0123456789-abcdefghijkl';
const GOOD_ORIGIN = 'https://good.example';

interface TokenOptions {
  /** Seconds since the epoch, or a jose time span such as '1h'. */
  exp?: number | string | null;
  rooms?: unknown;
  authorities?: unknown;
  secret?: string;
  alg?: 'HS256' | 'HS384' | 'HS512';
}

function token(sub: string, opts: TokenOptions = {}): Promise<string> {
  const claims: JWTPayload = {};
  if (opts.rooms !== undefined) claims.rooms = opts.rooms;
  if (opts.authorities !== undefined) claims.authorities = opts.authorities;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? 'HS256' })
    .setSubject(sub)
    .setIssuedAt();
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? '1h');
  return jwt.sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

let roomSeq = 0;
function room(prefix: string): string {
  return `${prefix}-${process.pid}-${++roomSeq}`;
}

const isErr = isRefusal;

describe('WebSocket bridge with tokens (AUTH_TOKEN_SECRET)', function () {
  this.timeout(60_000);

  let dir: string;
  let node: BusNode | undefined;
  const clients = new Set<WsClient>();

  const httpUrl = (): string => node!.httpUrl;

  async function connect(opts: { token?: string; origin?: string } = {}): Promise<WsClient> {
    const c = await WsClient.connect(httpUrl(), opts);
    clients.add(c);
    return c;
  }

  /** Connects with a token and waits for the hello: the socket was accepted. */
  async function accepted(t: string, origin?: string): Promise<WsClient> {
    const c = await connect({ token: t, ...(origin ? { origin } : {}) });
    await c.hello();
    return c;
  }

  /** Expects the socket to be refused: an err frame with `body`, then close 1008. */
  async function refused(c: WsClient, body: string): Promise<Frame> {
    const err = await c.nextError();
    expect(err.body).to.equal(body);
    expect((await c.waitClose()).code).to.equal(1008);
    expect(
      c.all((f) => f.type === 'rec'),
      'no hello for a refused socket',
    ).to.deep.equal([]);
    return err;
  }

  before(async function () {
    this.timeout(120_000);
    dir = await mkdtemp(join(tmpdir(), 'sb-bridge-auth-'));
    node = await BusNode.start('bridge-auth', {
      DATA_DIR: dir,
      AUTH_TOKEN_SECRET: SECRET,
      ALLOWED_ORIGINS: GOOD_ORIGIN,
      BRIDGE_PERMISSIONS: JSON.stringify({
        inbound: [{ addressRegex: 'test\\..*' }, { address: 'auth.in', requiredAuthority: 'admin' }],
        outbound: [{ addressRegex: 'test\\..*' }, { address: 'auth.out', requiredAuthority: 'admin' }],
      }),
    });
    await node.consumer('test.echo', 'echo');
    await node.consumer('auth.in', 'record');
  });

  afterEach(async () => {
    await closeAll(clients);
    clients.clear();
  });

  after(async function () {
    this.timeout(60_000);
    await closeAll(clients);
    await node?.proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  describe('connecting', () => {
    it('refuses a socket without a token: not_logged_in, then 1008', async () => {
      await refused(await connect(), 'not_logged_in');
      await refused(await connect({ token: '' }), 'not_logged_in');
    });

    it('refuses a token with a bad signature: auth_error, then 1008', async () => {
      const good = await token('alice');
      const forged = await token('alice', { secret: OTHER_SECRET });
      const [header, payload] = good.split('.');
      const tampered = `${header}.${payload}.${forged.split('.')[2]}`;
      const err = await refused(await connect({ token: tampered }), 'auth_error');
      expect(err.message).to.contain('signature');
      // A payload changed under the original signature.
      const claims = Buffer.from(JSON.stringify({ sub: 'root', exp: nowSeconds() + 3600 })).toString(
        'base64url',
      );
      await refused(await connect({ token: `${header}.${claims}.${good.split('.')[2]}` }), 'auth_error');
    });

    it('refuses an HS256 token signed with another secret', async () => {
      await refused(await connect({ token: await token('alice', { secret: OTHER_SECRET }) }), 'auth_error');
    });

    it('refuses an expired token: auth_error, then 1008', async () => {
      const err = await refused(
        await connect({ token: await token('alice', { exp: nowSeconds() - 60 }) }),
        'auth_error',
      );
      expect(err.message).to.contain('expired');
    });

    it('refuses alg "none" (an unsigned token)', async () => {
      const unsigned = new UnsecuredJWT({}).setSubject('alice').setExpirationTime('1h').encode();
      expect(unsigned.endsWith('.')).to.equal(true);
      await refused(await connect({ token: unsigned }), 'auth_error');
    });

    it('refuses malformed tokens and tokens without sub or exp', async () => {
      await refused(await connect({ token: 'not-a-jwt' }), 'auth_error');
      await refused(await connect({ token: await token('alice', { exp: null }) }), 'auth_error');
      const noSub = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(SECRET));
      await refused(await connect({ token: noSub }), 'auth_error');
      await refused(await connect({ token: await token('alice', { rooms: 'blue' }) }), 'auth_error');
    });

    it('accepts a valid token (HS256, HS384, HS512)', async () => {
      for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
        const c = await accepted(await token('alice', { alg }));
        await c.ping();
      }
    });

    it('keeps frames sent while the token is being checked, in order', async () => {
      const c = await connect({ token: await token('alice') });
      c.send({ type: 'ping' });
      c.send({ type: 'send', address: 'test.echo', body: 'early', replyAddress: 'early' });
      await c.nextRec('early');
      expect(c.frames.map((f) => f.type)).to.deep.equal(['rec', 'pong', 'rec']);
      expect(c.frames[0]).to.deep.include({ address: '__sb.control' });
    });

    it('closes the socket with 1008 when its token expires while connected', async () => {
      const c = await accepted(await token('alice', { exp: nowSeconds() + 4 }));
      await c.ping();
      const closed = await c.waitClose(10_000);
      expect(closed.code).to.equal(1008);
      expect(closed.reason).to.contain('expired');
    });

    it('keeps a socket with a long-lived token (30 days) open', async () => {
      const c = await accepted(await token('alice', { exp: '30d' }));
      await c.ping();
      const echoed = await c.call<{ body: string }>('test.echo', 'still open');
      expect(echoed.body).to.equal('still open');
      expect(c.closedWith).to.equal(undefined);
    });
  });

  describe('origins', () => {
    it('refuses a browser origin that is neither listed nor the server itself: access_denied, 1008', async () => {
      const t = await token('alice');
      const c = await connect({ token: t, origin: 'https://evil.example' });
      const err = await refused(c, 'access_denied');
      expect(err.message).to.contain('origin');
      await refused(
        await connect({ token: t, origin: 'https://good.example.evil.example' }),
        'access_denied',
      );
      await refused(await connect({ token: t, origin: 'null' }), 'access_denied');
    });

    it('accepts a listed origin, the server own origin, and clients that send none', async () => {
      const t = await token('alice');
      await (await accepted(t, GOOD_ORIGIN)).ping();
      await (await accepted(t, new URL(httpUrl()).origin)).ping();
      await (await accepted(t)).ping();
    });
  });

  describe('identity', () => {
    it('stamps sb-user from the token and drops the client own sb-* headers', async () => {
      const c = await accepted(await token('alice'));
      const echoed = await c.call<{ headers: Record<string, string> }>('test.echo', 'who', {
        'sb-user': 'mallory',
        'sb-session': 'forged',
        'x-app': '1',
      });
      expect(echoed.headers['sb-user']).to.equal('alice');
      expect(echoed.headers['x-app']).to.equal('1');
      expect(echoed.headers['sb-session']).to.be.a('string').and.not.equal('forged');
    });

    it('replaces the user of chat requests by the token sub', async () => {
      const r = room('sub');
      const c = await accepted(await token('alice'));
      await c.register(`chat.room.${r}`);
      await c.register(`chat.presence.${r}`);
      const join = await c.call<{ room: string; lastSeq: number; resumeToken?: string }>('chat.join', {
        room: r,
        user: 'mallory',
      });
      expect(join).to.include({ room: r, lastSeq: 0 });
      expect(join, 'no resume token in token mode').to.not.have.property('resumeToken');
      const presence = await c.next(
        (f) => f.address === `chat.presence.${r}` && (f.body as { users: string[] }).users.length > 0,
        'presence',
      );
      expect(presence.body).to.deep.equal({ room: r, users: ['alice'] });

      const ack = await c.call<{ seq: number }>('chat.send', {
        room: r,
        user: 'mallory',
        clientMsgId: 'm-1',
        text: 'who am I?',
      });
      expect(ack.seq).to.equal(1);
      const rec = await c.nextRec(`chat.room.${r}`);
      expect(rec.body).to.deep.include({ seq: 1, user: 'alice', text: 'who am I?' });
      // And so it is stored.
      const history = (await node!.request('chat.history', { room: r })) as ReplyResult;
      expect(history.ok).to.equal(true);
      expect((history.body as { messages: { user: string }[] }).messages.map((m) => m.user)).to.deep.equal([
        'alice',
      ]);
      // Without any user in the body too.
      const ack2 = await c.call<{ seq: number }>('chat.send', { room: r, clientMsgId: 'm-2', text: 'again' });
      expect(ack2.seq).to.equal(2);
      expect((await c.nextRec(`chat.room.${r}`)).body).to.deep.include({ seq: 2, user: 'alice' });
    });

    it('lets a token holder join a room under the same name from two sockets', async () => {
      const r = room('twice');
      const t = await token('alice');
      const one = await accepted(t);
      const two = await accepted(t);
      expect((await one.request('chat.join', { room: r, user: 'x' })).type).to.equal('rec');
      expect((await two.request('chat.join', { room: r, user: 'y' })).type).to.equal('rec');
    });

    it('reads history through the bridge in token mode', async () => {
      const r = room('hist');
      const c = await accepted(await token('alice'));
      await c.call('chat.join', { room: r, user: 'alice' });
      await c.call('chat.send', { room: r, user: 'alice', clientMsgId: 'h-1', text: 'first' });
      const answer = await c.request('chat.history', { room: r });
      expect(answer.type, JSON.stringify(answer)).to.equal('rec');
      expect((answer.body as { messages: { text: string }[] }).messages.map((m) => m.text)).to.deep.equal([
        'first',
      ]);
    });
  });

  describe('rooms claim', () => {
    it('refuses joining, sending to and registering rooms outside the claim; inside works', async () => {
      const blue = room('blue');
      const red = room('red');
      const c = await accepted(await token('alice', { rooms: [blue] }));
      for (const [address, body] of [
        ['chat.join', { room: red, user: 'alice' }],
        ['chat.send', { room: red, user: 'alice', clientMsgId: 'r-1', text: 'hi' }],
        ['chat.history', { room: red }],
        ['chat.leave', { room: red, user: 'alice' }],
      ] as const) {
        c.send({ type: 'send', address, body, replyAddress: 'denied' });
        expect((await c.nextError()).body, address).to.equal('access_denied');
      }
      for (const address of [`chat.room.${red}`, `chat.presence.${red}`]) {
        c.send({ type: 'register', address });
        expect((await c.nextError()).body, `register ${address}`).to.equal('access_denied');
      }
      await c.ping();
      expect(
        c.all((f) => f.address === 'denied'),
        'nothing reached the chat service',
      ).to.deep.equal([]);
      // The red room is untouched.
      const redHistory = (await node!.request('chat.history', { room: red })) as ReplyResult;
      expect((redHistory.body as { messages: unknown[] }).messages).to.deep.equal([]);

      const errors = c.all(isErr).length;
      await c.register(`chat.room.${blue}`);
      await c.register(`chat.presence.${blue}`);
      expect((await c.call<{ room: string }>('chat.join', { room: blue, user: 'alice' })).room).to.equal(
        blue,
      );
      await c.call('chat.send', { room: blue, user: 'alice', clientMsgId: 'b-1', text: 'in blue' });
      expect((await c.nextRec(`chat.room.${blue}`)).body).to.deep.include({ text: 'in blue', user: 'alice' });
      expect(c.all(isErr)).to.have.length(errors);
    });

    it('treats rooms ["*"] and no rooms claim as every room', async () => {
      for (const t of [await token('alice', { rooms: ['*'] }), await token('alice')]) {
        const c = await accepted(t);
        const r = room('any');
        await c.register(`chat.room.${r}`);
        expect((await c.request('chat.join', { room: r, user: 'alice' })).type).to.equal('rec');
        expect(c.all(isErr)).to.deep.equal([]);
      }
    });
  });

  describe('requiredAuthority', () => {
    it('refuses a token without the authority (access_denied) and allows one with it', async () => {
      const plain = await accepted(await token('alice', { authorities: ['reader'] }));
      plain.send({ type: 'send', address: 'auth.in', body: 'from plain' });
      expect((await plain.nextError()).body).to.equal('access_denied');
      plain.send({ type: 'register', address: 'auth.out' });
      expect((await plain.nextError()).body).to.equal('access_denied');
      await plain.ping();

      const admin = await accepted(await token('root', { authorities: ['reader', 'admin'] }));
      admin.send({ type: 'send', address: 'auth.in', body: 'from admin' });
      await admin.register('auth.out');
      await node!.publish('auth.out', 'for admins');
      expect((await admin.nextRec('auth.out')).body).to.equal('for admins');
      expect(admin.all(isErr)).to.deep.equal([]);
      expect(await node!.received('auth.in')).to.deep.equal(['from admin']);
    });
  });
});
