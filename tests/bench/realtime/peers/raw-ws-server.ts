/**
 * The practical ceiling of the fan-out benchmark: a minimal `ws` broadcast server. Subscribers
 * connect on `/sub`, the publisher on `/pub`; each frame the publisher sends is written unchanged
 * to every subscriber (one `send` per socket, no parsing, no store, no routing).
 * Many rooms: a client on `/room/<name>` is a member of that room, and each frame it sends is
 * written unchanged to every member of its room, itself included (one `send` per member).
 *
 *   node --import tsx tests/bench/realtime/peers/raw-ws-server.ts <port>
 */
import { createServer } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 0);
const subscribers = new Set<WebSocket>();
const rooms = new Map<string, Set<WebSocket>>();
const http = createServer((_req, res) => res.end('ok'));
const wss = new WebSocketServer({ server: http });

wss.on('connection', (ws, req) => {
  ws.on('error', () => ws.terminate());
  if (req.url?.startsWith('/room/')) {
    const name = req.url.slice('/room/'.length);
    let members = rooms.get(name);
    if (!members) rooms.set(name, (members = new Set()));
    const room = members;
    room.add(ws);
    ws.on('close', () => {
      room.delete(ws);
      if (room.size === 0) rooms.delete(name);
    });
    ws.on('message', (data: Buffer) => {
      const text = data.toString();
      for (const member of room) member.send(text);
    });
    return;
  }
  if (req.url === '/sub') {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
    return;
  }
  ws.on('message', (data: Buffer) => {
    const text = data.toString();
    for (const sub of subscribers) sub.send(text);
  });
});

http.listen(port, '127.0.0.1', () => {
  const addr = http.address();
  process.stdout.write(`raw ws listening on ${typeof addr === 'object' && addr ? addr.port : port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
