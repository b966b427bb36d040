/**
 * Where an embedded node's memory goes when its history is read back (not part of the test suite):
 * `node --expose-gc --import tsx tests/bench/soak/history-read-rss.ts [messages per room]`.
 * The EmbeddedMessageStore alone, 50 rooms: appends, then reads every room back in pages of 500
 * (as switchboard-probe does) and serializes each page as the bridge would, printing the process's
 * anonymous and file-backed RSS and the V8 heap at each step. See docs/benchmarks.md ("Soak").
 */
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedMessageStore } from '../../../backend/src/store/embedded.js';
const mem = (label: string) => {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (f: string) => Math.round(Number(new RegExp(`${f}:\\s+(\\d+)`).exec(s)![1]) / 1024);
  const h = process.memoryUsage();
  console.log(
    label,
    'rss',
    kb('VmRSS'),
    'anon',
    kb('RssAnon'),
    'file',
    kb('RssFile'),
    'heapUsed',
    Math.round(h.heapUsed / 1048576),
    'heapTotal',
    Math.round(h.heapTotal / 1048576),
    'external',
    Math.round(h.external / 1048576),
  );
};
const gcNow = (): void => (globalThis as { gc?: () => void }).gc?.();
const store = new EmbeddedMessageStore(mkdtempSync(join(tmpdir(), 'rss-exp-')));
await store.open();
const ROOMS = 50,
  PER = Number(process.argv[2] ?? 4000);
mem('open');
for (let i = 0; i < PER; i++) {
  await Promise.all(
    Array.from({ length: ROOMS }, (_, r) =>
      store.append({
        room: `room-${r}`,
        user: `u${r}`,
        clientMsgId: `${r}-${i}-xxxxxxxxxxxxxxxxxxxxxxxxxx`,
        text: `probe:abcdef1234:${i * ROOMS + r}`,
      }),
    ),
  );
}
gcNow();
mem('written');
await new Promise((r) => setTimeout(r, 3000));
gcNow();
mem('idle');
for (let r = 0; r < ROOMS; r++) {
  for (let after = 0; ;) {
    const page = await store.history(`room-${r}`, { afterSeq: after, limit: 500 });
    const json = JSON.stringify({ messages: page }); // what the bridge sends
    if (json.length === 0 || page.length < 500) break;
    after = page.at(-1)!.seq;
  }
}
mem('read (before gc)');
gcNow();
mem('read (after gc)');
await new Promise((r) => setTimeout(r, 5000));
gcNow();
mem('read +5 s');
await store.close();
