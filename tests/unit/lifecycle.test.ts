import { expect } from 'chai';
import { drain, type DrainPlan, type Reconnectable, spreadOver } from '../../backend/src/lifecycle/index.js';

const quietLog = { info: () => {}, warn: () => {} };

describe('lifecycle: spreading reconnect requests', () => {
  it('handles every item exactly once, the last no earlier than the window allows', async () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const seen: number[] = [];
    const t0 = Date.now();
    let lastAt = 0;
    await spreadOver(items, 300, (i) => {
      seen.push(i);
      lastAt = Date.now() - t0;
    }).done;
    expect([...seen].sort((a, b) => a - b)).to.deep.equal(items);
    // 50 items over 300 ms: the 50th is due at 49/50 of the window.
    expect(lastAt).to.be.at.least(Math.floor((300 * 49) / 50) - 10);
  });

  it('hurry() handles the rest at once; an item that throws does not stop the others', async () => {
    const seen: number[] = [];
    const spread = spreadOver([1, 2, 3, 4], 60_000, (i) => {
      seen.push(i);
      if (i === 2) throw new Error('boom');
    });
    spread.hurry();
    await spread.done;
    expect([...seen].sort()).to.deep.equal([1, 2, 3, 4]);
  });

  it('an empty list or a zero window is done at once', async () => {
    await spreadOver([], 10_000, () => {}).done;
    const seen: string[] = [];
    await spreadOver(['a', 'b'], 0, (x) => seen.push(x)).done;
    expect(seen.sort()).to.deep.equal(['a', 'b']);
  });
});

describe('lifecycle: the drain sequence', () => {
  function plan(sessionCount: number, overrides: Partial<DrainPlan> = {}) {
    const calls: string[] = [];
    const open = new Set<Reconnectable>();
    for (let i = 0; i < sessionCount; i++) {
      const s: Reconnectable = {
        requestReconnect: (reason) => {
          calls.push(`reconnect:${reason}`);
          open.delete(s);
        },
      };
      open.add(s);
    }
    const observed = { ws: 0, drained: -1 };
    const p: DrainPlan = {
      stopAccepting: () => calls.push('stopAccepting'),
      sessions: () => [...open],
      stopGrpc: async () => void calls.push('grpc'),
      stopServices: async () => {
        calls.push(`services(open=${open.size})`);
      },
      flushStore: async () => void calls.push('store'),
      leaveCluster: async () => void calls.push('cluster'),
      closeServers: async () => void calls.push('servers'),
      timing: { windowMs: 5_000, reconnectsPerSec: 1_000, sessionCloseGraceMs: 500 },
      observer: {
        reconnectRequested: (_t, n = 1) => void (observed.ws += n),
        drainFinished: (s) => void (observed.drained = s),
      },
      log: quietLog,
      ...overrides,
    };
    return { p, calls, observed };
  }

  it('stops accepting first, asks every session, and stops services only once they are gone', async () => {
    const { p, calls, observed } = plan(20);
    const report = await drain(p);
    expect(calls[0]).to.equal('stopAccepting');
    expect(calls.filter((c) => c.startsWith('reconnect:'))).to.have.length(20);
    expect(calls.slice(-4)).to.deep.equal(['services(open=0)', 'store', 'cluster', 'servers']);
    expect(calls).to.include('grpc');
    expect(report.sessionsAtStart).to.equal(20);
    expect(report.sessionsLeft).to.equal(0);
    // 20 sessions at 1,000/s: a 20 ms spread, not the whole 5 s window.
    expect(report.spreadMs).to.equal(20);
    expect(observed.ws).to.equal(20);
    expect(observed.drained).to.be.at.least(0);
  });

  it('a failing phase is logged and the later phases still run', async () => {
    const warnings: string[] = [];
    const { p, calls } = plan(0, {
      flushStore: async () => {
        throw new Error('database unreachable');
      },
      log: { info: () => {}, warn: (_o, msg) => void warnings.push(msg) },
    });
    await drain(p);
    expect(calls.slice(-2)).to.deep.equal(['cluster', 'servers']);
    expect(warnings.join('\n')).to.match(/store failed/);
  });

  it('sessions that ignore the request are cut after the close grace', async () => {
    const calls: string[] = [];
    const stubborn: Reconnectable = { requestReconnect: () => void calls.push('asked') };
    const { p } = plan(0, { sessions: () => [stubborn] });
    const report = await drain({
      ...p,
      timing: { windowMs: 0, reconnectsPerSec: 1_000, sessionCloseGraceMs: 50 },
    });
    expect(calls).to.deep.equal(['asked', 'asked']);
    expect(report.sessionsLeft).to.equal(1);
  });
});
