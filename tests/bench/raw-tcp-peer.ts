/**
 * The peer for the bus benchmark: a bare Node TCP server reading the same kind of
 * length-prefixed frames, with no routing, registry or codec. Frame kinds: 1 = count it,
 * 2 = echo it back, 3 = report the count as a 4-byte answer frame.
 */
import net from 'node:net';

let count = 0;
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let off = 0;
    while (buf.length - off >= 5) {
      const len = buf.readUInt32BE(off);
      if (buf.length - off < 4 + len) break;
      const kind = buf.readUInt8(off + 4);
      if (kind === 1) {
        // Parse like a consumer would, so the comparison includes decoding.
        JSON.parse(buf.subarray(off + 5, off + 4 + len).toString());
        count += 1;
      } else if (kind === 2) {
        socket.write(buf.subarray(off, off + 4 + len));
      } else if (kind === 3) {
        const out = Buffer.alloc(9);
        out.writeUInt32BE(5, 0);
        out.writeUInt8(3, 4);
        out.writeUInt32BE(count, 5);
        socket.write(out);
      }
      off += 4 + len;
    }
    buf = buf.subarray(off);
  });
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`raw peer listening on ${(server.address() as net.AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
