import { expect } from 'chai';
import { isReservedAddress, newReplyAlias, publicHeaders } from '../../backend/src/bridge/delivery.js';
import { AddressLimits, ipOfPeer } from '../../backend/src/bridge/limits.js';
import { originAllowed } from '../../backend/src/bridge/ws/ws-endpoint.js';
import { FileLinks, mayRead, UploadLimits } from '../../backend/src/files/access.js';

describe('hardening building blocks', () => {
  it('AddressLimits caps connections and in-flight requests per address, and gives slots back', () => {
    const l = new AddressLimits({ maxConnectionsPerAddress: 2, maxInflightPerAddress: 1 });
    expect(l.openConnection('1.2.3.4')).to.equal(true);
    expect(l.openConnection('::ffff:1.2.3.4')).to.equal(true);
    expect(l.openConnection('1.2.3.4'), 'third from the same address').to.equal(false);
    expect(l.openConnection('5.6.7.8')).to.equal(true);
    l.closeConnection('1.2.3.4');
    expect(l.openConnection('1.2.3.4')).to.equal(true);
    expect(l.startRequest('1.2.3.4')).to.equal(true);
    expect(l.startRequest('1.2.3.4')).to.equal(false);
    l.endRequest('1.2.3.4');
    expect(l.counts('1.2.3.4').inflight).to.equal(0);
  });

  it('reads the IP of gRPC peers', () => {
    expect(ipOfPeer('127.0.0.1:5000')).to.equal('127.0.0.1');
    expect(ipOfPeer('ipv4:10.0.0.1:1')).to.equal('10.0.0.1');
    expect(ipOfPeer('[::1]:5000')).to.equal('::1');
  });

  it('hands recipients no internal header, and the same object when there is none', () => {
    const plain = { app: 'x' };
    expect(publicHeaders(plain)).to.equal(plain);
    expect(
      publicHeaders({ app: 'x', 'sb-node': 'n', 'sb-session': 's', traceparent: 't', 'sb-user': 'u' }),
    ).to.deep.equal({ app: 'x', 'sb-user': 'u' });
    expect(newReplyAlias()).to.not.equal(newReplyAlias());
    expect(isReservedAddress('__sb.reply.n.1')).to.equal(true);
    expect(isReservedAddress('chat.send')).to.equal(false);
  });

  it('accepts the own origin only by IP or localhost (DNS rebinding), or when listed', () => {
    expect(originAllowed({ origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080' }, [])).to.equal(true);
    expect(originAllowed({ origin: 'http://localhost:8080', host: 'localhost:8080' }, [])).to.equal(true);
    expect(originAllowed({ origin: 'http://[::1]:8080', host: '[::1]:8080' }, [])).to.equal(true);
    expect(originAllowed({ origin: 'http://evil.example:8080', host: 'evil.example:8080' }, [])).to.equal(
      false,
    );
    expect(
      originAllowed({ origin: 'https://chat.example', host: 'chat.example' }, ['https://chat.example']),
    ).to.equal(true);
    expect(originAllowed({ host: 'x' }, []), 'no Origin: not a browser').to.equal(true);
  });

  it('signs file links that expire and cannot be forged', () => {
    const links = new FileLinks('s'.repeat(32), 60_000);
    const id = '0b0e5d2a-3f59-4a8e-9d36-0c2a8c1f3e11';
    const { url } = links.sign(id, 1_000_000);
    const q = new URL(url, 'http://x').searchParams;
    expect(links.verify(id, q.get('exp')!, q.get('sig')!, 1_000_000)).to.equal(true);
    expect(links.verify(id, q.get('exp')!, q.get('sig')!, 1_000_000 + 120_000), 'expired').to.equal(false);
    expect(links.verify(id.replace('0b', '0c'), q.get('exp')!, q.get('sig')!, 1_000_000)).to.equal(false);
    expect(
      new FileLinks('t'.repeat(32), 60_000).verify(id, q.get('exp')!, q.get('sig')!, 1_000_000),
    ).to.equal(false);
  });

  it('lets the uploader and readers of the room read a file, no one else', () => {
    const principal = (user: string, rooms?: string[]) => ({
      user,
      rooms: rooms ? new Set(rooms) : undefined,
      authorities: new Set<string>(),
      expiresAt: undefined,
    });
    const meta = { id: 'i', name: 'n', size: 1, contentType: 'a/b', user: 'ana', room: 'r1' };
    expect(mayRead(meta, principal('ana', []))).to.equal(true);
    expect(mayRead(meta, principal('bob', ['r1']))).to.equal(true);
    expect(mayRead(meta, principal('bob'))).to.equal(true);
    expect(mayRead(meta, principal('eve', ['r2']))).to.equal(false);
    expect(mayRead({ ...meta, room: undefined }, principal('bob'))).to.equal(false);
  });

  it('limits uploads per minute and bytes per hour', () => {
    const u = new UploadLimits({ uploadsPerMinute: 2, bytesPerHour: 100 });
    const t = 3_600_000 * 10;
    expect(u.start('a', t).ok).to.equal(true);
    expect(u.start('a', t).ok).to.equal(true);
    expect(u.start('a', t).ok).to.equal(false);
    expect(u.start('a', t + 60_000).ok, 'next minute').to.equal(true);
    u.used('a', 100, t + 60_000);
    expect(u.start('a', t + 120_000)).to.deep.equal({ ok: false, message: 'at most 100 bytes an hour' });
    expect(u.start('b', t).ok).to.equal(true);
  });
});
