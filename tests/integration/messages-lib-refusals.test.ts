import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { ChatClient, ChatError } from '../../messages-lib/src/index.js';
import { BusNode } from '../helpers/bus-nodes.js';
import { waitFor } from '../infra/proc.js';

/**
 * messages-lib against a real node that refuses frames: in token mode the bridge refuses the
 * registrations and the `chat.join` of a room the token does not grant, and a low
 * BRIDGE_RATE_PER_SEC makes it drop frames with `rate_limited`. The refusal names the refused
 * frame in its `refused` field (docs/protocol.md, "Which frame was refused"), so the join it
 * belongs to fails at once with the refusal, however many refusals came before.
 */

const SECRET = 'messages-lib-refusals-secret-0123456789';
/** Long enough that a join failing by timeout instead of by its refusal cannot pass. */
const REQUEST_TIMEOUT_MS = 4_000;

let roomSeq = 0;
function room(prefix: string): string {
  return `${prefix}-${process.pid}-${++roomSeq}`;
}

function token(sub: string, rooms: string[]): Promise<string> {
  return new SignJWT({ rooms })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

describe('messages-lib: refusals of the bridge reach the operation they name', function () {
  this.timeout(60_000);
  let dir: string;
  let node: BusNode;
  const clients: ChatClient[] = [];

  before(async function () {
    this.timeout(120_000);
    dir = await mkdtemp(join(tmpdir(), 'sb-msglib-refusals-'));
    // 5 frames per second, bursts of 10.
    node = await BusNode.start('msglib-refusals', {
      DATA_DIR: dir,
      AUTH_TOKEN_SECRET: SECRET,
      BRIDGE_RATE_PER_SEC: '5',
    });
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.allSettled(clients.map((c) => c.close()));
    await node?.proc.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function client(rooms: string[]): Promise<{ c: ChatClient; errors: ChatError[] }> {
    const c = new ChatClient({
      url: node.httpUrl,
      user: 'ana',
      token: await token('ana', rooms),
      WebSocket: WebSocket as never,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    clients.push(c);
    const errors: ChatError[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    return { c, errors };
  }

  /** Joins `denied` and `granted` at once: the first fails at once with the refusal, the other joins. */
  async function deniedAndGranted(c: ChatClient, denied: string, granted: string): Promise<void> {
    const started = Date.now();
    const [refused, joined] = await Promise.allSettled([c.join(denied), c.join(granted)]);
    expect(refused.status).to.equal('rejected');
    const err = (refused as PromiseRejectedResult).reason as unknown;
    expect(ChatError.is(err, 'BRIDGE'), String(err)).to.equal(true);
    expect((err as ChatError).reason).to.equal('access_denied');
    expect(Date.now() - started, 'refused, not timed out').to.be.below(REQUEST_TIMEOUT_MS);
    expect(joined.status, String((joined as PromiseRejectedResult).reason)).to.equal('fulfilled');
    expect(c.room(denied)).to.equal(undefined);
  }

  it('a join of a room the token does not grant is rejected with access_denied, not reported elsewhere', async () => {
    const open = room('open');
    const { c, errors } = await client([open]);
    await deniedAndGranted(c, room('secret'), open);
    expect(errors).to.deep.equal([]);
    expect((await c.room(open)!.send('still here')).seq).to.equal(1);
  });

  it('after a rate_limited refusal, a refused join is still rejected at once with its refusal', async () => {
    const first = room('open');
    const second = room('open');
    const { c, errors } = await client([first, second]);
    const r = await c.join(first);
    // More requests at once than the burst: the bridge drops some and says rate_limited once.
    const burst = await Promise.allSettled(
      Array.from({ length: 20 }, () => r.fetchHistory({ afterSeq: 0, limit: 1 })),
    );
    const dropped = burst.filter((b) => b.status === 'rejected');
    expect(dropped.length, 'requests dropped over the rate').to.be.greaterThan(0);
    for (const d of dropped)
      expect(ChatError.is((d as PromiseRejectedResult).reason, 'TIMEOUT')).to.equal(true);
    expect(errors.map((e) => e.reason)).to.include('rate_limited');
    const before = errors.length;
    // Tokens come back at 5 per second: the socket is answered again.
    await waitFor(
      'the rate-limited socket to be answered again',
      () =>
        r.fetchHistory({ afterSeq: 0, limit: 1 }).then(
          () => true,
          () => false,
        ),
      20_000,
      0,
    );
    await deniedAndGranted(c, room('secret'), second);
    expect(errors.slice(before), 'nothing reported besides the rejection').to.deep.equal([]);
    expect(c.state).to.equal('open');
  });
});
