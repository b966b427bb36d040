import { expect } from 'chai';
import { ChatError } from '../../../messages-lib/src/errors.js';
import { isStoreBusy, sendRetryDelay } from '../../../messages-lib/src/send-retry.js';

const retry = { baseMs: 250, maxMs: 10_000 };
const busy = new ChatError('RECIPIENT_FAILURE', 'message store busy: the database is slow; retry later', {
  code: 503,
});
const down = new ChatError('RECIPIENT_FAILURE', 'message store unavailable: no server', { code: 503 });

describe('messages-lib: resending after a store busy refusal', () => {
  it('tells a busy store from other failures', () => {
    expect(isStoreBusy(busy)).to.equal(true);
    expect(isStoreBusy(down)).to.equal(false);
    expect(isStoreBusy(new ChatError('TIMEOUT', 'message store busy'))).to.equal(false);
  });

  it('spreads the first retry after a busy refusal over 4x baseMs, with full jitter, and backs off from there', () => {
    const at = (err: ChatError, attempt: number, r: number): number =>
      sendRetryDelay(err, attempt, retry, () => r);
    expect([at(busy, 0, 0), at(busy, 0, 0.5), at(busy, 0, 0.999)]).to.deep.equal([0, 500, 999]);
    expect(at(down, 0, 0.999), 'other failures keep the plain backoff').to.equal(249);
    expect(at(busy, 4, 0.5)).to.equal(2000);
    expect(at(busy, 20, 0.999), 'bounded by maxMs').to.equal(9990);
  });
});
