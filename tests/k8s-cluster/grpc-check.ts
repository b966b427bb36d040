/**
 * Run inside the cluster's network by cluster.test.ts: a gRPC client on `dns:///` of the headless
 * Service (round robin over every backend pod) sends messages that a WebSocket client on the
 * `switchboard` Service receives. Prints one JSON line: which pods served the gRPC calls and how
 * many messages arrived. Every wait is bounded; exits 1 on failure.
 *
 *   node --import tsx tests/k8s-cluster/grpc-check.ts <dns:///host:port> <http://service:port>
 */
import WebSocket from 'ws';
import { ChatClient } from '../../messages-lib/src/index.js';
import { GrpcChatClient } from '../../messages-lib/src/grpc/index.js';

const [target, url] = process.argv.slice(2);
const SENT = 20;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  if (!target || !url) throw new Error('usage: grpc-check.ts <grpc target> <http url>');
  const room = `k8s-grpc-${Date.now()}`;
  const grpc = new GrpcChatClient({ target, user: 'grpc-check' });
  const ws = new ChatClient({ url, user: 'ws-check', WebSocket: WebSocket as never });
  const nodes = new Set<string>();
  grpc.on('served', (s) => {
    if (s.method === 'history') nodes.add(s.node);
  });
  try {
    await Promise.all([grpc.connect(), ws.connect()]);
    const [rg, rw] = await Promise.all([grpc.join(room), ws.join(room)]);
    // round_robin uses each subchannel once it is ready: history calls until two pods answered.
    await waitFor(
      'history calls answered by two pods',
      async () => {
        await rg.fetchHistory({ limit: 1 });
        return nodes.size >= 2;
      },
      30_000,
    );
    for (let i = 0; i < SENT; i++) await rg.send(`grpc ${i}`);
    await waitFor('the WebSocket client received every message', () => rw.messages.length >= SENT, 30_000);
    const texts = rw.messages.map((m) => m.text);
    const inOrder = texts.every((t, i) => t === `grpc ${i}`);
    console.log(
      JSON.stringify({
        ok: inOrder && texts.length === SENT,
        nodes: [...nodes],
        sent: SENT,
        received: texts.length,
      }),
    );
  } finally {
    await Promise.allSettled([grpc.close(), ws.close()]);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
