import { WebSocket } from 'ws';
import { ChatClient } from '../../messages-lib/src/index.js';

/**
 * A client arriving while something is broken: connects to `url`, joins `room` and gives the
 * join's lastSeq, or 'no answer' when the join did not answer within `timeoutMs`.
 */
export async function newcomerJoin(
  url: string,
  room: string,
  timeoutMs: number,
): Promise<number | 'no answer' | undefined> {
  const newcomer = new ChatClient({
    url,
    user: 'newcomer',
    WebSocket: WebSocket as never,
    reconnect: { baseMs: 100, maxMs: 1_000 },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await newcomer.connect();
    return await Promise.race([
      newcomer.join(room).then((r) => r.lastSeq),
      new Promise<'no answer'>((r) => (timer = setTimeout(() => r('no answer'), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
    await newcomer.close();
  }
}
