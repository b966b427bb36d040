import { expect } from 'chai';
import {
  childOf,
  continueOrStart,
  parseTraceparent,
  startTrace,
} from '../../backend/src/trace/trace-context.js';

describe('trace context (W3C traceparent)', () => {
  it('starts valid, sampled traces whose ids do not repeat, across many refills of the id pool', () => {
    const traces = new Set<string>();
    const spans = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const t = startTrace();
      const ctx = parseTraceparent(t);
      expect(ctx, t).to.not.equal(undefined);
      expect(ctx!.flags).to.equal('01');
      traces.add(ctx!.traceId);
      spans.add(ctx!.spanId);
    }
    expect(traces.size).to.equal(20_000);
    expect(spans.size).to.equal(20_000);
  });

  it('keeps a valid incoming trace at an edge, and starts one for a missing or invalid one', () => {
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(continueOrStart(incoming)).to.equal(incoming);
    for (const bad of [undefined, 'nonsense', '00-00000000000000000000000000000000-00f067aa0ba902b7-01']) {
      const started = continueOrStart(bad);
      expect(parseTraceparent(started), String(bad)).to.not.equal(undefined);
      expect(started).to.not.equal(bad);
    }
  });

  it('a child keeps the trace id and gets a new span id', () => {
    const parent = startTrace();
    const child = childOf(parent);
    expect(parseTraceparent(child)!.traceId).to.equal(parseTraceparent(parent)!.traceId);
    expect(parseTraceparent(child)!.spanId).to.not.equal(parseTraceparent(parent)!.spanId);
  });
});
