/**
 * The peer users would pick: a Socket.IO 4 server. Subscribers connect with `?room=` and are put in
 * that room; a `pub` event from the publisher is broadcast to the room (`io.to(room).emit`, the
 * sender included if it is a member) and acknowledged when the client asks for an ack. With
 * REDIS_URL set it uses @socket.io/redis-adapter, so several of these processes form one cluster.
 *
 *   node --import tsx tests/bench/realtime/peers/socketio-server.ts <port>
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? 0);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false });

const redisUrl = process.env.REDIS_URL;
if (redisUrl) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on('connection', (socket) => {
  const room = socket.handshake.query.room;
  if (typeof room === 'string') {
    // With the Redis adapter the join is asynchronous: a failed one is reported, the socket dropped.
    void Promise.resolve(socket.join(room)).catch((err: unknown) => {
      process.stderr.write(`socket.io: could not join room ${room}: ${String(err)}\n`);
      socket.disconnect(true);
    });
    socket.emit('joined');
  }
  socket.on('pub', (body: { room?: unknown }, ack?: unknown) => {
    if (typeof body?.room === 'string') io.to(body.room).emit('msg', body);
    if (typeof ack === 'function') (ack as () => void)();
  });
});

http.listen(port, '127.0.0.1', () => {
  const addr = http.address();
  process.stdout.write(`socket.io listening on ${typeof addr === 'object' && addr ? addr.port : port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
