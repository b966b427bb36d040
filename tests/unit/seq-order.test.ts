import { expect } from 'chai';
import { SeqOrder } from '../../protocol/src/seq-order.js';

const m = (seq: number) => ({ seq });
const seqs = (list: { seq: number }[]) => list.map((x) => x.seq);

describe('SeqOrder (the seq-order core of messages-lib rooms and the gRPC Join stream)', () => {
  it('releases live messages in order, each once; one behind a gap waits until the gap closes', () => {
    const order = new SeqOrder(0);
    expect(seqs(order.live(m(1)))).to.deep.equal([1]);
    expect(seqs(order.live(m(3)))).to.deep.equal([]);
    expect(seqs(order.live(m(4)))).to.deep.equal([]);
    expect(order.waiting).to.equal(2);
    expect(order.highestWaiting()).to.equal(4);
    expect(seqs(order.live(m(2)))).to.deep.equal([2, 3, 4]);
    expect(seqs(order.live(m(3))), 'delivered already').to.deep.equal([]);
    expect(order.lastSeq).to.equal(4);
    expect(order.waiting).to.equal(0);
  });

  it('takes an authoritative list past its holes, and what waited below its messages first', () => {
    const order = new SeqOrder(10);
    order.live(m(12));
    order.live(m(16));
    // The store holds 11, 13 and 15 (14 is a hole): 12 waited, and goes between 11 and 13.
    expect(seqs(order.merge([m(11), m(13), m(15)]))).to.deep.equal([11, 12, 13, 15, 16]);
    expect(order.lastSeq).to.equal(16);
  });

  it('with a target (the end of the room as read), releases what waits up to it past any hole', () => {
    const order = new SeqOrder(5);
    order.live(m(8));
    order.live(m(9));
    order.live(m(12));
    expect(seqs(order.merge([], 9)), '6 and 7 are holes; 12 may still be preceded').to.deep.equal([8, 9]);
    expect(order.highestWaiting()).to.equal(12);
    expect(seqs(order.merge([m(11)], 12))).to.deep.equal([11, 12]);
  });

  it('holds everything until its cursor is placed, then drops what is at or below it', () => {
    const order = new SeqOrder<{ seq: number }>();
    expect(seqs(order.live(m(3)))).to.deep.equal([]);
    expect(seqs(order.live(m(5)))).to.deep.equal([]);
    expect(seqs(order.merge([m(1)])), 'nothing merges before the cursor is placed').to.deep.equal([]);
    order.place(3);
    expect(order.waiting, '3 was delivered by the join').to.equal(1);
    expect(seqs(order.merge([m(4)]))).to.deep.equal([4, 5]);
    order.reset();
    expect(order.lastSeq).to.equal(undefined);
    expect(order.waiting).to.equal(0);
  });
});
