import { ClusterFixture } from './helpers/cluster-fixture.js';
import { stopAll } from './infra/proc.js';
const fx = await ClusterFixture.start({ nodes: 3 });
await fx.waitForSubscribers('chat.send', fx.nodes);
try {
  for (const conc of [1, 20]) {
    const t0 = Date.now();
    let n = 0;
    await Promise.all(
      Array.from({ length: conc }, async (_, s) => {
        for (let i = 0; i < 1000 / conc; i++) {
          await fx.nodes[s % 3]!.request('chat.send', {
            room: 'r' + conc,
            user: 'u',
            clientMsgId: `c${s}-${i}`,
            text: 'x',
          });
          n++;
        }
      }),
    );
    console.log('conc', conc, (n / ((Date.now() - t0) / 1000)).toFixed(0), 'req/s');
  }
} finally {
  await fx.stop();
  await stopAll();
}
process.exit(0);
