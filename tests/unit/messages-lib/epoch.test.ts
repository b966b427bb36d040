import { expect } from 'chai';
import type { ChatMessage } from '../../../messages-lib/src/index.js';
import { Harness, sleep, waitFor } from './fake-server.js';

describe('messages-lib: store epochs (a reset or restored store resyncs the room)', () => {
  const h = new Harness();
  afterEach(() => h.closeAll());

  async function joinedWithThree() {
    const server = await h.server();
    server.epoch = 'epoch-1';
    const client = h.client(server);
    await client.connect();
    const room = await client.join('general');
    for (const text of ['a', 'b', 'c']) server.publish(server.store('general', text));
    await waitFor(() => room.messages.length === 3, 'three messages');
    const resyncs: { from: string; to: string }[] = [];
    const after: ChatMessage[] = [];
    const errors: string[] = [];
    room.on('resync', (r) => resyncs.push(r));
    room.on('message', (m) => after.push(m));
    room.on('error', (e) => errors.push(e.message));
    return { server, client, room, resyncs, after, errors };
  }

  it('a live message of a new epoch: resync, then the new history from seq 1, once each', async () => {
    const { server, room, resyncs, after, errors } = await joinedWithThree();
    server.resetStore('epoch-2');
    const first = server.store('general', 'new 1');
    server.publish(first);
    await waitFor(() => room.messages.length === 1 && room.lastSeq === 1, 'the new history');
    server.publish(server.store('general', 'new 2'));
    await waitFor(() => room.messages.length === 2, 'the next message');
    expect(resyncs).to.deep.equal([{ from: 'epoch-1', to: 'epoch-2' }]);
    expect(room.messages.map((m) => [m.seq, m.text])).to.deep.equal([
      [1, 'new 1'],
      [2, 'new 2'],
    ]);
    expect(after.map((m) => m.text)).to.deep.equal(['new 1', 'new 2']);
    // A late copy from the old history is dropped, and starts no second resync.
    server.publishRaw('chat.room.general', { ...first, seq: 3, text: 'old', epoch: 'epoch-1' });
    await sleep(50);
    expect(resyncs).to.have.length(1);
    expect(room.messages).to.have.length(2);
    expect(errors).to.deep.equal([]);
  });

  it('a rejoin answered with a new epoch: resync instead of dropping seqs at or below the cursor', async () => {
    const { server, room, resyncs, after, errors } = await joinedWithThree();
    server.terminateAll();
    server.resetStore('epoch-2');
    server.store('general', 'new 1');
    server.store('general', 'new 2');
    await waitFor(() => room.messages.length === 2 && room.state === 'joined', 'the new history', 10_000);
    expect(resyncs).to.deep.equal([{ from: 'epoch-1', to: 'epoch-2' }]);
    expect(room.messages.map((m) => [m.seq, m.text])).to.deep.equal([
      [1, 'new 1'],
      [2, 'new 2'],
    ]);
    expect(after.map((m) => m.text)).to.deep.equal(['new 1', 'new 2']);
    expect(errors).to.deep.equal([]);
  });

  it('the same epoch on a rejoin: no resync, the missed messages replayed', async () => {
    const { server, room, resyncs } = await joinedWithThree();
    server.terminateAll();
    server.store('general', 'd');
    await waitFor(() => room.messages.length === 4 && room.state === 'joined', 'the missed one', 10_000);
    expect(resyncs).to.deep.equal([]);
    expect(room.messages.map((m) => m.text)).to.deep.equal(['a', 'b', 'c', 'd']);
  });
});
