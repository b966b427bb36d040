/// <reference types="node" />
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { ChatClient, type WebSocketCtor } from '../client.js';
import { ChatError } from '../errors.js';
import type { Room } from '../room.js';
import { describe } from './failures.js';
import type { ProbeLedger } from './ledger.js';
import type { ProbeOptions } from './options.js';
import type { RunProbeOptions } from './run-options.js';
import { signProbeToken } from './token.js';
import { sleep, within } from './waits.js';

/**
 * One probe client: spread over the given URLs from its own starting point, holding one message
 * (the probe checks deliveries itself: 500 clients holding their room's last 1,000 messages were
 * 200 MB and a 1,000-element shift per delivery), its hellos and errors reported to the ledger.
 */
export function probeClient(
  options: RunProbeOptions,
  user: string,
  i: number,
  ledger: ProbeLedger,
  tokenSeconds: number,
): ChatClient {
  const urls = options.urls.map((_, j) => options.urls[(i + j) % options.urls.length]!);
  const secret = options.tokenSecret;
  const client = new ChatClient({
    WebSocket: WebSocket as unknown as WebSocketCtor,
    maxMessages: 1,
    ...options.clientOptions,
    url: urls,
    user,
    ...(secret !== undefined ? { token: () => signProbeToken(secret, user, tokenSeconds) } : {}),
  });
  client.on('hello', ({ node }) => ledger.hello(i, node, performance.now()));
  client.on('error', (e) => ledger.clientError(i, describe(e)));
  return client;
}

/**
 * A first join, retried while the server says it may succeed later (a 503 from a store shedding
 * load, a timeout) and the connect deadline allows, with a jittered pause as messages-lib's own
 * retries: a busy server is not a broken one.
 */
export async function joinRetrying(
  client: ChatClient,
  room: string,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<Room> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await within(client.join(room), deadline, signal);
    } catch (err) {
      const pause = Math.random() * Math.min(4_000, 250 * 2 ** attempt);
      if (!(err instanceof ChatError) || !err.retryable || performance.now() + pause >= deadline) throw err;
      await sleep(pause, signal);
    }
  }
}

/** Sends message `key` from client `i` without waiting: the schedule never blocks on acks. */
export function sendOne(
  ledger: ProbeLedger,
  room: Room,
  i: number,
  key: number,
  closing: () => boolean,
): void {
  const text = ledger.textFor(key);
  const at = performance.now();
  const promise = room.send(text);
  // The entry is queued synchronously: its clientMsgId is the one every attempt will carry.
  const entry = room.pending.at(-1);
  ledger.send(i, key, entry?.text === text ? entry.clientMsgId : `unqueued-${key}`, at);
  promise.then(
    (ack) => ledger.ack(key, ack.seq, performance.now()),
    (err: unknown) => {
      if (!closing()) ledger.fail(key, describe(err), performance.now());
    },
  );
}

export function tokenLifetimeS(o: ProbeOptions): number {
  // Long enough for every phase: a token is signed for each connection attempt anyway.
  return o.connectTimeoutS + o.durationS + o.settleS + 600;
}

export function countNodes(clients: ChatClient[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of clients) {
    const node = c.node ?? 'unknown';
    counts[node] = (counts[node] ?? 0) + 1;
  }
  return counts;
}

/** How long closing every client may take at the end of a run. */
const CLOSE_TIMEOUT_MS = 10_000;

/** Closes every client, at most CLOSE_TIMEOUT_MS; a client that does not close in time is logged. */
export async function closeAll(clients: ChatClient[], log: (line: string) => void): Promise<void> {
  await within(
    Promise.allSettled(clients.map((c) => c.close())),
    performance.now() + CLOSE_TIMEOUT_MS,
    undefined,
  ).catch(() => log('probe: some clients did not close in time'));
}
