/**
 * Attacks on HTTP and on token mode (issue 19: items 2, 3, 4, 5, 11): one node with
 * AUTH_TOKEN_SECRET, a bystander chatting with a token from its own address meanwhile. For each:
 * the node stays up under RSS_BOUND_MIB, /health answers, the bystander sees no error, the attacker gets the
 * documented error (docs/security.md).
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { bearer, chatClient, eventBusClient } from '../helpers/grpc-clients.js';
import { closeAll, WsClient } from '../helpers/ws-client.js';
import { AbuseNode, Bystander } from './abuse-node.js';

const SECRET = 'abuse-suite-secret-0123456789-abcdefghij';
const FILE_MAX = 256 * 1024;

function token(sub: string, opts: { rooms?: string[]; exp?: number | string } = {}): Promise<string> {
  const jwt = new SignJWT(opts.rooms ? { rooms: opts.rooms } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '1h');
  return jwt.sign(new TextEncoder().encode(SECRET));
}

function form(bytes: number, name = 'f.bin'): FormData {
  const f = new FormData();
  f.append('file', new Blob([Buffer.alloc(bytes, 7)]), name);
  return f;
}

/** Every file under the node's files directory (data and metadata), tmp/ included. */
function filesOnDisk(node: AbuseNode): string[] {
  const root = join(node.dataDir, 'files');
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('abuse: HTTP and token mode (one node, AUTH_TOKEN_SECRET set)', function () {
  this.timeout(120_000);
  let node: AbuseNode;
  let bystander: Bystander;
  const sockets: WsClient[] = [];
  const grpcClients: grpc.Client[] = [];

  before(async function () {
    this.timeout(120_000);
    node = await AbuseNode.start('abuse-http', {
      AUTH_TOKEN_SECRET: SECRET,
      FILE_MAX_BYTES: String(FILE_MAX),
      FILE_UPLOADS_PER_MINUTE: '30',
      PRESTOP_WAIT_MS: '0',
    });
    bystander = await Bystander.join(node, 'calm', { token: await token(`bystander-${process.pid}`) });
  });

  beforeEach(() => bystander?.start());

  afterEach(async function () {
    this.timeout(60_000);
    await closeAll(sockets.splice(0));
    for (const c of grpcClients.splice(0)) c.close();
    if (this.currentTest?.state === 'failed') return;
    await node.expectHealthy();
    await bystander.stopAndCheck();
  });

  after(async function () {
    this.timeout(60_000);
    await bystander?.close();
    await node?.stop();
  });

  it('2: /prestop and /metrics are not on the public port; the admin port serves them', async () => {
    for (const path of ['/prestop', '/metrics']) {
      const res = await fetch(`${node.url}${path}`);
      expect(res.status, path).to.equal(404);
    }
    const ready = await fetch(`${node.url}/ready`);
    expect(ready.status).to.equal(200);
    const metrics = await fetch(`${node.adminUrl}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(await metrics.text()).to.contain('switchboard_');
    expect((await fetch(`${node.adminUrl}/health`)).status).to.equal(200);
  });

  it('3: /files needs a token; a file is served to its uploader and its room only, or by a signed link', async () => {
    expect((await fetch(`${node.url}/files`, { method: 'POST', body: form(10) })).status).to.equal(401);
    const garbage = await fetch(`${node.url}/files`, {
      method: 'POST',
      body: form(10),
      headers: { authorization: 'Bearer garbage' },
    });
    expect(garbage.status).to.equal(401);
    expect(((await garbage.json()) as { error: string }).error).to.equal('auth_error');

    const ana = await token('ana', { rooms: ['r1'] });
    const up = await fetch(`${node.url}/files?room=r1`, {
      method: 'POST',
      body: form(100),
      headers: { authorization: `Bearer ${ana}` },
    });
    expect(up.status).to.equal(201);
    const { id } = (await up.json()) as { id: string };
    expect((await fetch(`${node.url}/files/${id}`)).status, 'no token').to.equal(401);
    const eve = await token('eve', { rooms: ['r2'] });
    const byEve = await fetch(`${node.url}/files/${id}`, { headers: { authorization: `Bearer ${eve}` } });
    expect(byEve.status, 'another room').to.equal(404);
    const bob = await token('bob', { rooms: ['r1'] });
    expect((await fetch(`${node.url}/files/${id}?token=${bob}`)).status, 'a member').to.equal(200);
    const link = (await (
      await fetch(`${node.url}/files/${id}/link`, { headers: { authorization: `Bearer ${bob}` } })
    ).json()) as { url: string; expiresAt: number };
    expect((await fetch(`${node.url}${link.url}`)).status, 'signed link').to.equal(200);
    const forged = link.url.replace(/sig=[^&]+/, 'sig=AAAA');
    expect((await fetch(`${node.url}${forged}`)).status, 'forged link').to.equal(401);
    // An id seen in r1 cannot carry the file into r2.
    const c = await WsClient.connect(node.url, { token: eve });
    sockets.push(c);
    const r = await c.request('chat.send', { room: 'r2', user: 'x', clientMsgId: 'f1', file: { id } });
    expect(r.failureCode).to.equal(403);
    expect(String(r.message)).to.match(/^file: the file belongs to another room/);
  });

  it('3: cross-origin uploads are refused; uploads past the rate are 429', async () => {
    const t = await token('uploader');
    const cross = await fetch(`${node.url}/files`, {
      method: 'POST',
      body: form(10),
      headers: { authorization: `Bearer ${t}`, origin: 'https://evil.example' },
    });
    expect(cross.status).to.equal(403);
    expect(((await cross.json()) as { error: string }).error).to.equal('origin_not_allowed');
    const statuses: number[] = [];
    // The limit counts per clock minute: keep the loop (well under a second) inside one.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 55_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 100));
    for (let i = 0; i < 40; i++) {
      // A refusal closes the connection (the body is not read): the next request may find it gone.
      const res = await fetch(`${node.url}/files`, {
        method: 'POST',
        body: form(1_000),
        headers: { authorization: `Bearer ${t}` },
      }).catch(() => undefined);
      statuses.push(res?.status ?? 0);
      await res?.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 201).length, statuses.join(',')).to.equal(30);
    expect(statuses).to.include(429);
  });

  it('4: a refused upload (one byte too large) leaves nothing on disk', async () => {
    const before = filesOnDisk(node);
    const t = await token('big-uploader');
    const res = await fetch(`${node.url}/files`, {
      method: 'POST',
      body: form(FILE_MAX + 1),
      headers: { authorization: `Bearer ${t}` },
    });
    expect(res.status).to.equal(413);
    expect(((await res.json()) as { error: string }).error).to.equal('file_too_large');
    expect(filesOnDisk(node)).to.deep.equal(before);
  });

  it('5: gRPC Join and Subscribe streams end with UNAUTHENTICATED when their token expires', async () => {
    const soon = await token('short', { exp: Math.floor(Date.now() / 1000) + 2 });
    const target = `127.0.0.1:${node.grpcPort}`;
    const chat = chatClient(target, { 'grpc.use_local_subchannel_pool': 1 });
    const bus = eventBusClient(target, { 'grpc.use_local_subchannel_pool': 1 });
    grpcClients.push(chat, bus);
    const ended = (call: grpc.ClientReadableStream<unknown>): Promise<grpc.StatusObject> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the stream outlived its token by 15 s')), 15_000);
        call.on('data', () => {});
        call.on('error', () => {});
        call.on('status', (s: grpc.StatusObject) => {
          clearTimeout(timer);
          resolve(s);
        });
      });
    const join = chat.join({ room: 'expiring', user: 'ignored' }, bearer(soon));
    const sub = bus.subscribe({ address: 'chat.room.expiring' }, bearer(soon));
    const [j, s] = await Promise.all([ended(join), ended(sub)]);
    for (const st of [j, s]) {
      expect(st.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(st.details).to.equal('auth_error: token expired');
    }
  });

  it('11: a token whose sub has surrounding spaces is refused, not trimmed into another user', async () => {
    const c = await WsClient.connect(node.url, { token: await token(' ana ') });
    sockets.push(c);
    const err = await c.nextError('auth_error');
    expect(err.message).to.equal('token sub: no leading or trailing spaces and no control characters');
    expect((await c.waitClose()).code).to.equal(1008);
  });

  it('fuzz: random HTTP requests get 4xx, never a crash', async () => {
    const rnd = (n: number): string =>
      Array.from({ length: n }, () => String.fromCharCode(33 + Math.floor(Math.random() * 90))).join('');
    const paths = ['/files', '/files/', '/eventbus', '/eventbus/info', '/ready', '/', '/eventbus/000/x/xhr'];
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) {
      const path = `${paths[i % paths.length]}${i % 3 ? encodeURIComponent(rnd(20)) : ''}`;
      const method = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'][i % 6]!;
      const res = await fetch(`${node.url}${path}`, {
        method,
        ...(method === 'GET' || method === 'OPTIONS' ? {} : { body: rnd(i * 50) }),
        headers: {
          'content-type': ['multipart/form-data; boundary=x', 'application/json', 'text/plain'][i % 3]!,
          authorization: `Bearer ${rnd(30)}`,
        },
      }).catch(() => undefined); // a dropped connection is an answer too: only 5xx fail the test
      if (res) {
        statuses.push(res.status);
        await res.arrayBuffer().catch(() => undefined); // the body does not matter, nor its end
      }
    }
    expect(
      statuses.filter((s) => s >= 500),
      `5xx among ${statuses.join(',')}`,
    ).to.deep.equal([]);
  });
});
