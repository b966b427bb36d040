import { expect } from 'chai';
import { runProbeWorkers } from '../../../messages-lib/src/probe/workers.js';
import { waitFor } from '../../infra/proc.js';
import { FakeChatServer } from './fake-server.js';

/**
 * `--workers`: the rooms dealt to worker threads, one merged report that counts exactly what one
 * process would (and a loss in one worker's room shows in the merged verdict).
 */
describe('probe --workers (fake server)', function () {
  this.timeout(30_000);
  let server: FakeChatServer;

  beforeEach(async () => {
    server = await FakeChatServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  const options = () => ({
    urls: [server.url],
    clients: 8,
    rooms: 4,
    rate: 80,
    durationS: 1,
    settleS: 5,
    connectTimeoutS: 10,
    log: () => {},
  });

  it('two workers: every message of every room counted once, in one report', async () => {
    const lines: string[] = [];
    const r = await runProbeWorkers({ ...options(), log: (l) => lines.push(l) }, 2);
    expect(r.reasons).to.deep.equal([]);
    expect(r).to.include({
      ok: true,
      workers: 2,
      clients: 8,
      rooms: 4,
      sent: 80,
      acked: 80,
      lost: 0,
      duplicates: 0,
    });
    // 20 messages per room, 2 clients per room.
    expect(r).to.include({ expected: 160, delivered: 160 });
    expect(r.store).to.include({ checked: true, messages: 80 });
    expect(r.nodes.start).to.deep.equal({ 'fake-node': 8 });
    expect(lines.filter((l) => l === 'probe: running')).to.have.length(1);
    expect(lines.some((l) => l.startsWith('probe[w1]: '))).to.equal(true);
    for (let room = 0; room < 4; room++)
      expect(server.messages(`${r.roomPrefix}-${room}`)).to.have.length(20);
    expect(r.probeMaxRssMb).to.be.greaterThan(0);
    // The workers closed their clients; the server sees the last closes a moment later.
    await waitFor('every probe socket closed at the server', () => server.sockets.size === 0, 5_000);
  });

  it('a phantom ack in one worker’s room: lost in the merged verdict', async () => {
    let seen = 0;
    server.intercept = (req) => {
      if (req.address !== 'chat.send' || seen++ !== 10) return undefined;
      req.socket.ws.send(
        JSON.stringify({ type: 'rec', address: req.replyAddress, body: { seq: 5_000, id: 'x', ts: 0 } }),
      );
      return { kind: 'ignore' };
    };
    const r = await runProbeWorkers({ ...options(), settleS: 1 }, 2);
    expect(r.ok).to.equal(false);
    expect(r.lost, 'both members of the room, and the store').to.equal(3);
    expect(r.violations.map((v) => v.kind)).to.include.members(['lost', 'not-stored']);
  });
});
