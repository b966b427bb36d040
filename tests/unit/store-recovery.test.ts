import { expect } from 'chai';
import { type RetryHintable, StoreRecoveryNotice } from '../../backend/src/lifecycle/store-recovery.js';

/** The store-back notice driven by hand: a fake clock, a degraded flag, recording sessions. */
function setup(sessionCount: number, opts: { retriesPerSec?: number; minIntervalMs?: number } = {}) {
  let now = 0;
  let degraded = false;
  const hints: { session: number; jitterMs: number }[] = [];
  const sessions: RetryHintable[] = Array.from({ length: sessionCount }, (_, i) => ({
    hintRetry: (_reason: string, jitterMs: number) => hints.push({ session: i, jitterMs }),
  }));
  const notice = new StoreRecoveryNotice({
    degraded: () => degraded,
    sessions: () => sessions,
    retriesPerSec: opts.retriesPerSec ?? 500,
    minIntervalMs: opts.minIntervalMs ?? 5_000,
    now: () => now,
    log: { info: () => {} },
  });
  return {
    notice,
    hints,
    set: (d: boolean) => (degraded = d),
    advance: (ms: number) => (now += ms),
  };
}

describe('store recovery notice', () => {
  it('tells every session once when the store stops being degraded, and not before', () => {
    const t = setup(3);
    t.notice.check();
    expect(t.hints, 'healthy all along').to.deep.equal([]);
    t.set(true);
    t.notice.check();
    t.advance(10_000);
    t.notice.check();
    expect(t.hints, 'while degraded').to.deep.equal([]);
    t.set(false);
    t.notice.check();
    expect(t.hints.map((h) => h.session)).to.deep.equal([0, 1, 2]);
    t.notice.check();
    expect(t.hints, 'once per recovery').to.have.length(3);
    expect(t.notice.sent).to.equal(1);
  });

  it('spreads the retries at the configured rate, within 0.5 s and 10 s', () => {
    const spread = (sessions: number, perSec: number): number => {
      const t = setup(sessions, { retriesPerSec: perSec });
      t.set(true);
      t.notice.check();
      t.set(false);
      t.notice.check();
      return t.hints[0]!.jitterMs;
    };
    expect(spread(10, 500), 'few sessions: the narrowest spread').to.equal(500);
    expect(spread(2_000, 500), '2,000 sessions at 500/s').to.equal(4_000);
    expect(spread(100_000, 500), 'the widest spread').to.equal(10_000);
  });

  it('a flapping store gets at most one notice per interval; a recovery within it is told when it ends', () => {
    const t = setup(1, { minIntervalMs: 5_000 });
    const flap = () => {
      t.set(true);
      t.notice.check();
      t.set(false);
      t.notice.check();
    };
    flap();
    expect(t.notice.sent).to.equal(1);
    t.advance(1_000);
    flap();
    t.advance(1_000);
    flap();
    expect(t.notice.sent, 'within the interval').to.equal(1);
    t.advance(3_000);
    t.notice.check();
    expect(t.notice.sent, 'the held-back recovery, told when the interval ended').to.equal(2);
    t.advance(10_000);
    t.notice.check();
    expect(t.notice.sent, 'nothing new').to.equal(2);
  });
});
