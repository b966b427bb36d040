import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { ChatClient, type ChatMessage } from '../../messages-lib/src/index.js';
import { BusNode, type ReplyResult } from '../helpers/bus-nodes.js';
import { waitFor } from '../infra/proc.js';

function ok<T>(r: ReplyResult): T {
  expect(r.ok, JSON.stringify(r)).to.equal(true);
  return r.body as T;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Room epochs on a real standalone node: its embedded store is wiped while a client is connected
 * and the node restarts on the same port; seqs start again at 1, and the client must not take
 * them for messages it already has.
 */
describe('room epochs: a store reset under a connected client', function () {
  this.timeout(120_000);
  let dir: string;
  let node: BusNode | undefined;
  let client: ChatClient | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-epoch-'));
  });
  after(async () => {
    await client?.close();
    await node?.proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('resyncs (a resync event, then the new history), dropping nothing silently', async () => {
    const env = { DATA_DIR: dir, PORT: String(await freePort()) };
    node = await BusNode.start('epoch-1', env);
    const first = ok<{ epoch: string }>(await node.request('chat.join', { room: 'general', user: 'probe' }));
    expect(first.epoch).to.be.a('string').and.not.equal('');

    client = new ChatClient({
      url: node.httpUrl,
      user: 'ana',
      WebSocket: WebSocket as never,
      reconnect: { baseMs: 100, maxMs: 500 },
      heartbeatMs: 1_000,
    });
    await client.connect();
    const room = await client.join('general');
    for (let i = 1; i <= 5; i++) await room.send(`before ${i}`);
    await waitFor('5 messages', () => room.messages.length === 5, 10_000);
    const resyncs: { from: string; to: string }[] = [];
    const after: ChatMessage[] = [];
    const errors: string[] = [];
    room.on('resync', (r) => resyncs.push(r));
    room.on('message', (m) => after.push(m));
    room.on('error', (e) => errors.push(e.message));

    // The store is reset: the node stops, its data directory is wiped, and it starts again.
    await node.proc.stop();
    await rm(dir, { recursive: true, force: true });
    node = await BusNode.start('epoch-2', env);
    const second = ok<{ epoch: string; lastSeq: number }>(
      await node.request('chat.join', { room: 'general', user: 'probe' }),
    );
    expect(second.epoch).to.not.equal(first.epoch);
    expect(second.lastSeq).to.equal(0);
    for (let i = 1; i <= 3; i++) {
      const ack = ok<{ seq: number }>(
        await node.request('chat.send', {
          room: 'general',
          user: 'bob',
          clientMsgId: `b${i}`,
          text: `after ${i}`,
        }),
      );
      expect(ack.seq).to.equal(i); // the seqs ana's client already passed
    }

    await waitFor('the client to hold the new history', () => room.messages.length === 3, 20_000);
    expect(resyncs).to.deep.equal([{ from: first.epoch, to: second.epoch }]);
    expect(room.messages.map((m) => [m.seq, m.text])).to.deep.equal([
      [1, 'after 1'],
      [2, 'after 2'],
      [3, 'after 3'],
    ]);
    expect(after.map((m) => m.text)).to.deep.equal(['after 1', 'after 2', 'after 3']);
    expect(errors).to.deep.equal([]);
    // Live messages of the new epoch keep coming.
    await room.send('after reset, from ana');
    await waitFor('the next message', () => room.messages.length === 4, 10_000);
    expect(room.messages.at(-1)).to.deep.include({ seq: 4, text: 'after reset, from ana' });
  });
});
