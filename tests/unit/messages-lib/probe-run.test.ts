import { expect } from 'chai';
import { TokenVerifier } from '../../../backend/src/auth/tokens.js';
import { parseProbeArgs, UsageError } from '../../../messages-lib/src/probe/options.js';
import { runProbeCli } from '../../../messages-lib/src/probe/cli-main.js';
import { type ProbeReport, runProbe, type RunProbeOptions } from '../../../messages-lib/src/probe/run.js';
import { signProbeToken } from '../../../messages-lib/src/probe/token.js';
import { FakeChatServer, type Request } from './fake-server.js';

/**
 * runProbe end to end against the in-process fake bridge: a clean server passes, and a server that
 * acks what it never stored, stores a message twice, or drops every socket mid-run is judged for
 * what it did.
 */

const FAST = {
  reconnect: { baseMs: 10, maxMs: 40, drainJitterMs: 10 },
  heartbeatMs: 2_000,
  requestTimeoutMs: 1_000,
  gapFillMs: 30,
};

function options(server: FakeChatServer, over: Partial<RunProbeOptions> = {}): RunProbeOptions {
  return {
    urls: [server.url],
    clients: 6,
    rooms: 2,
    rate: 60,
    durationS: 1,
    settleS: 5,
    connectTimeoutS: 5,
    clientOptions: FAST,
    log: () => {},
    ...over,
  };
}

/** The n-th chat.send the server sees (0-based). */
function nthSend(n: number, action: (req: Request) => ReturnType<NonNullable<FakeChatServer['intercept']>>) {
  let seen = 0;
  return (req: Request) => (req.address === 'chat.send' && seen++ === n ? action(req) : undefined);
}

describe('probe run (fake server)', function () {
  this.timeout(20_000);
  let server: FakeChatServer;

  beforeEach(async () => {
    server = await FakeChatServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it('a clean server: everything acked reaches every client of its room once, in order', async () => {
    const r = await runProbe(options(server));
    expect(r.ok, r.reasons.join('; ')).to.equal(true);
    expect(r).to.include({
      sent: 60,
      acked: 60,
      failed: 0,
      unacked: 0,
      lost: 0,
      duplicates: 0,
      outOfOrder: 0,
    });
    // 30 messages per room, 3 clients per room.
    expect(r).to.include({ expected: 180, delivered: 180, reconnects: 0, settled: true });
    expect(r.rejoinMs).to.deep.equal({ p50: 0, p99: 0, max: 0, count: 0 });
    expect(r.store).to.include({ checked: true, messages: 60 });
    expect(r.nodes.start).to.deep.equal({ 'fake-node': 6 });
    expect(server.messages(`${r.roomPrefix}-0`)).to.have.length(30);
    expect(server.sockets.size, 'every client closed').to.equal(0);
  });

  it('joins refused as busy (503) are retried within the connect timeout; other refusals abort', async () => {
    let joins = 0;
    server.intercept = (req) =>
      req.address === 'chat.join' && joins++ < 4
        ? { kind: 'fail', failureType: 'RECIPIENT_FAILURE', code: 503, message: 'message store busy' }
        : undefined;
    const r = await runProbe(options(server));
    expect(r.ok, r.reasons.join('; ')).to.equal(true);
    expect(joins, 'the 4 refused joins were tried again').to.equal(6 + 4);

    let forbidden = 0;
    server.intercept = (req) =>
      req.address === 'chat.join' && ++forbidden > 0
        ? { kind: 'fail', failureType: 'RECIPIENT_FAILURE', code: 403, message: 'forbidden' }
        : undefined;
    const refused = await runProbe(options(server));
    expect(refused.ok).to.equal(false);
    expect(refused.aborted).to.match(/could not connect and join .* forbidden/);
    expect(
      forbidden,
      'a refusal that will not change is not retried: one join per client at most',
    ).to.be.at.most(6);
  });

  it('an ack for a message the server never stored: lost, at every client and in the store', async () => {
    server.intercept = nthSend(7, (req) => {
      req.socket.ws.send(
        JSON.stringify({
          type: 'rec',
          address: req.replyAddress,
          body: { seq: 1_000, id: 'phantom', ts: 0 },
        }),
      );
      return { kind: 'ignore' };
    });
    const r = await runProbe(options(server, { settleS: 1 }));
    expect(r.ok).to.equal(false);
    expect(r.acked).to.equal(60);
    // 3 clients of the room never got it, and the store does not hold it.
    expect(r.lost).to.equal(4);
    expect(r.store.lost).to.equal(1);
    expect(r.duplicates).to.equal(0);
    expect(r.settled).to.equal(false);
    expect(r.violations.map((v) => v.kind)).to.include.members(['lost', 'not-stored']);
    expect(r.reasons).to.include('4 acked deliveries lost');
  });

  it('a longer run checks the store as it goes: the same verdict, a message the store lost after its ack is found', async () => {
    const long = { rate: 300, durationS: 2, storeCheckAt: 50, progressEveryMs: 100 };
    const clean = await runProbe(options(server, long));
    expect(clean.ok, clean.reasons.join('; ')).to.equal(true);
    expect(clean.store).to.include({ checked: true, messages: 600, lost: 0, duplicates: 0 });
    expect(clean.store.checkedDuringRun, 'checked while sending').to.be.at.least(300);

    let lostSeq: { room: string; seq: number } | undefined;
    server.intercept = nthSend(20, (req) => {
      const b = req.body as { room: string };
      // Stored, acked and published, then gone from the store once every member has it.
      setTimeout(() => {
        const m = server.messages(b.room).at(-1)!;
        lostSeq = { room: b.room, seq: m.seq };
      }, 0);
      setTimeout(() => server.forget(lostSeq!.room, lostSeq!.seq), 200);
      return undefined;
    });
    const r = await runProbe(options(server, long));
    expect(r.ok).to.equal(false);
    expect(r.store.checkedDuringRun, 'the other room is checked on').to.be.at.least(200);
    expect(r.store).to.include({ checked: true, lost: 1, duplicates: 0 });
    expect(r).to.include({ lost: 1, duplicates: 0, outOfOrder: 0 });
    expect(r.violations.find((v) => v.kind === 'not-stored')).to.include({ seq: lostSeq!.seq });
  });

  it('a message stored and published twice: duplicates at every client and in the store', async () => {
    server.intercept = nthSend(5, (req) => {
      const b = req.body as { room: string; text: string; user: string; clientMsgId: string };
      setImmediate(() => server.publish(server.store(b.room, b.text, b.user, b.clientMsgId)));
      return undefined;
    });
    const r = await runProbe(options(server));
    expect(r.ok).to.equal(false);
    expect(r.lost).to.equal(0);
    expect(r.duplicates).to.equal(3 + 1);
    expect(r.store.duplicates).to.equal(1);
    expect(r.violations.map((v) => v.kind)).to.include.members(['duplicate', 'stored-twice']);
  });

  it('every socket dropped mid-run: the clients reconnect and nothing acked is lost', async () => {
    let dropped = false;
    const r = await runProbe(
      options(server, {
        log: (line) => {
          if (line === 'probe: running' && !dropped) {
            dropped = true;
            setTimeout(() => server.terminateAll(), 300);
          }
        },
      }),
    );
    expect(dropped).to.equal(true);
    expect(r.reconnects).to.be.at.least(6);
    // Every client was away once: from the drop to its room joined again.
    expect(r.rejoinMs.count, 'reconnections that ended in a rejoin').to.equal(6);
    expect(r.rejoinMs.max).to.be.greaterThan(0);
    // The slowest of them, step by step: lost, a reconnection scheduled, connected, joined.
    expect(r.slowestRejoins).to.have.length(5);
    const trace = r.slowestRejoins[0]!;
    expect(trace.ms).to.equal(r.rejoinMs.max);
    expect(trace.steps[0]).to.match(/^\+0 disconnected 1006/);
    expect(trace.steps.some((s) => /reconnecting #\d+ in \d+ ms/.test(s))).to.equal(true);
    expect(trace.steps.some((s) => /connected to /.test(s))).to.equal(true);
    expect(trace.steps.at(-1)).to.equal(`+${trace.ms} joined`);
    // And the slowest deliveries, with who sent them and how long their acks took.
    const slow = r.slowestDeliveries[0]!;
    expect(slow.ms).to.equal(r.latencyMs.max);
    expect(slow.from).to.match(/^probe-/);
    expect(slow.to).to.match(/^probe-/);
    expect(r.slowestDeliveries.map((d) => d.ms)).to.deep.equal(
      [...r.slowestDeliveries.map((d) => d.ms)].sort((a, b) => b - a),
    );
    expect(r.ok, r.reasons.join('; ')).to.equal(true);
    expect(r).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, acked: 60 });
  });

  it('an unreachable URL aborts after the connect timeout, naming the client and the URL', async () => {
    await server.close();
    server = await FakeChatServer.start();
    const url = server.url;
    await server.close();
    const r: ProbeReport = await runProbe(options(server, { urls: [url], connectTimeoutS: 0.5 }));
    expect(r.ok).to.equal(false);
    expect(r.aborted).to.match(
      /could not connect and join .* via ws:\/\/127\.0\.0\.1:\d+\/eventbus\/websocket/,
    );
    expect(r.sent).to.equal(0);
    server = await FakeChatServer.start(); // for afterEach
  });

  it('the CLI: exit 0 with a clean JSON line, 1 when something acked was lost', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: () => {} };
    const args = ['--url', server.url, '--clients', '4', '--rooms', '2', '--rate', '40', '--duration', '0.5'];
    expect(await runProbeCli([...args, '--json-only'], io)).to.equal(0);
    expect(out).to.have.length(1);
    expect(JSON.parse(out[0]!)).to.include({ ok: true, sent: 20, lost: 0 });

    out.length = 0;
    server.intercept = nthSend(3, (req) => {
      req.socket.ws.send(
        JSON.stringify({ type: 'rec', address: req.replyAddress, body: { seq: 999, id: 'x', ts: 0 } }),
      );
      return { kind: 'ignore' };
    });
    expect(await runProbeCli([...args, '--settle', '0.5'], io)).to.equal(1);
    expect(out[0]).to.match(/^FAIL: /);
    const report = JSON.parse(out.at(-1)!) as ProbeReport;
    expect(report.ok).to.equal(false);
    expect(report.lost).to.be.greaterThan(0);
  });

  it('the CLI: bad flags exit 2 with a message naming the flag', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l) };
    expect(await runProbeCli(['--clients', '3'], io)).to.equal(2);
    expect(err[0]).to.equal('switchboard-probe: --url: required (e.g. --url http://127.0.0.1:8080)');
    expect(await runProbeCli(['--url', server.url, '--rate', 'fast'], io)).to.equal(2);
    expect(err.at(-2)).to.contain('--rate');
  });
});

describe('probe flags', () => {
  const url = ['--url', 'http://127.0.0.1:8080'];

  it('defaults, and a comma-separated URL list', () => {
    expect(parseProbeArgs(url)).to.deep.equal({
      urls: ['http://127.0.0.1:8080'],
      clients: 20,
      rooms: 2,
      rate: 20,
      durationS: 10,
      settleS: 30,
      connectTimeoutS: 30,
      jsonOnly: false,
    });
    const o = parseProbeArgs(['--url', 'http://a:1, ws://b:2/x', '--clients', '50', '--json-only']);
    expect(o).to.include({ clients: 50, jsonOnly: true });
    expect(o !== 'help' && o.urls).to.deep.equal(['http://a:1', 'ws://b:2/x']);
    expect(parseProbeArgs(['--help'])).to.equal('help');
  });

  const bad: [string[], RegExp][] = [
    [[], /^--url: required/],
    [['--url', 'nope'], /^--url: not a URL/],
    [['--url', 'ftp://x'], /^--url: expected http/],
    [['--url', ','], /^--url: at least one/],
    [[...url, '--clients', '0'], /^--clients: expected a whole number from 1/],
    [[...url, '--clients', '2.5'], /^--clients/],
    [[...url, '--rooms', '30'], /^--rooms: at most --clients/],
    [[...url, '--rate=-1'], /^--rate: expected a number > 0/],
    [[...url, '--duration', '0'], /^--duration/],
    [[...url, '--settle', 'x'], /^--settle: expected a number ≥ 0/],
    [[...url, '--rate', '0.01', '--duration', '1'], /^--rate × --duration/],
    [[...url, '--room-prefix', 'a b'], /^--room-prefix/],
    [[...url, '--room-prefix', 'x'.repeat(63)], /^--room-prefix/],
    [[...url, '--token-secret', 'short'], /^--token-secret: at least 32/],
    [[...url, '--nope'], /Unknown option '--nope'/],
    [[...url, '--rate'], /--rate/],
    [[...url, 'stray'], /stray/],
  ];
  for (const [args, message] of bad) {
    it(`refuses ${JSON.stringify(args.slice(2).length ? args.slice(2) : args)}`, () => {
      expect(() => parseProbeArgs(args))
        .to.throw(UsageError)
        .that.satisfies((e: Error) => message.test(e.message));
    });
  }

  it('signs tokens the server accepts, for the user and long enough', async () => {
    const secret = 's'.repeat(32);
    const token = signProbeToken(secret, 'probe-x-1', 120);
    const principal = await new TokenVerifier(secret).verify(token);
    expect(principal.user).to.equal('probe-x-1');
    expect(principal.rooms).to.equal(undefined);
    expect(principal.expiresAt! - Date.now()).to.be.within(100_000, 121_000);
    await new TokenVerifier('t'.repeat(32)).verify(token).then(
      () => expect.fail('a token signed with another secret must be refused'),
      (e: Error) => expect(e.message).to.equal('bad token signature'),
    );
  });
});
