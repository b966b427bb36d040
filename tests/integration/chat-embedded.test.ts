import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BusNode, type ReplyResult } from '../helpers/bus-nodes.js';

function ok<T>(r: ReplyResult): T {
  expect(r.ok, JSON.stringify(r)).to.equal(true);
  return r.body as T;
}

/** The embedded default (what `npm start` runs): one process, messages on local disk. */
describe('chat on the embedded store (standalone node)', function () {
  this.timeout(60_000);
  let dir: string;
  let node: BusNode | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-embedded-'));
  });
  after(async () => {
    await node?.proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps messages, seqs and idempotency across a restart', async () => {
    node = await BusNode.start('embedded-1', { DATA_DIR: dir });
    for (let i = 1; i <= 30; i++) {
      const ack = ok<{ seq: number }>(
        await node.request('chat.send', {
          room: 'general',
          user: 'ana',
          clientMsgId: `m${i}`,
          text: `hello ${i}`,
        }),
      );
      expect(ack.seq).to.equal(i);
    }
    await node.proc.stop();
    expect((await node.proc.exited).code).to.equal(0);

    node = await BusNode.start('embedded-2', { DATA_DIR: dir });
    const join = ok<{ lastSeq: number; messages: { seq: number; text: string }[] }>(
      await node.request('chat.join', { room: 'general', user: 'bob', since: 25 }),
    );
    expect(join.lastSeq).to.equal(30);
    expect(join.messages.map((m) => m.text)).to.deep.equal([26, 27, 28, 29, 30].map((i) => `hello ${i}`));
    const retry = ok<{ seq: number }>(
      await node.request('chat.send', { room: 'general', user: 'ana', clientMsgId: 'm7', text: 'hello 7' }),
    );
    expect(retry.seq).to.equal(7);
    const next = ok<{ seq: number }>(
      await node.request('chat.send', { room: 'general', user: 'ana', clientMsgId: 'm31', text: 'hello 31' }),
    );
    expect(next.seq).to.equal(31);
  });
});
