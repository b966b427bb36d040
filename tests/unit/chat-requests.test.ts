import { expect } from 'chai';
import { InFlightRequests } from '../../backend/src/chat/requests.js';
import type { Message } from '../../backend/src/eventbus/types.js';

function request(body: unknown): { m: Message<unknown>; replies: unknown[]; failures: [number, string][] } {
  const replies: unknown[] = [];
  const failures: [number, string][] = [];
  const m = {
    address: 'chat.send',
    body,
    headers: {},
    replyAddress: '__reply.1',
    reply: (b: unknown) => replies.push(b),
    fail: (code: number, text: string) => failures.push([code, text]),
  } as unknown as Message<unknown>;
  return { m, replies, failures };
}

function recordingLog() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, log: { warn: (obj: object, msg: string) => lines.push({ obj: obj as never, msg }) } };
}

describe('chat requests in flight (replies, failures, the slow-request log)', () => {
  it('logs a request answered later than the threshold, with its address, room, time and outcome', async () => {
    const { lines, log } = recordingLog();
    const requests = new InFlightRequests(log, 5);
    const { m, replies } = request({ room: 'general', text: 'hi' });
    await requests.handler(async () => {
      await new Promise((r) => setTimeout(r, 30));
      return { seq: 1 };
    })(m);
    expect(replies).to.deep.equal([{ seq: 1 }]);
    const slow = lines.filter((l) => l.msg === 'chat request slow');
    expect(slow).to.have.length(1);
    expect(slow[0]!.obj).to.include({ address: 'chat.send', room: 'general', outcome: 'ok' });
    expect(slow[0]!.obj.ms).to.be.a('number').at.least(5);
  });

  it('says nothing of a request answered in time, and names a refusal by its code', async () => {
    const { lines, log } = recordingLog();
    const fast = new InFlightRequests(log, 60_000);
    await fast.handler(async () => ({ ok: true }))(request({ room: 'general' }).m);
    expect(lines).to.deep.equal([]);
    const slow = new InFlightRequests(log, 0);
    const { m, failures } = request({ room: 'x'.repeat(500) });
    await slow.handler(async () => {
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('boom');
    })(m);
    expect(failures).to.deep.equal([[500, 'internal error']]);
    const entry = lines.find((l) => l.msg === 'chat request slow')!;
    expect(entry.obj).to.include({ outcome: '500' });
    expect(entry.obj.room, 'a long room name is cut').to.have.length(200);
  });
});
