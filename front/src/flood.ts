import { ChatError, type Room } from '@switchboard/messages-lib';
import { formatTime } from './time-format.js';

/**
 * Sends `count` sample messages in batches of `batch`: a batch is queued at once (the outbox
 * sends one message at a time per room, in order) and the next batch waits for its acks, so a
 * demo floods steadily without piling thousands of entries into the outbox.
 */
export async function runFlood(
  room: Room,
  count: number,
  batch: number,
  progress: (acked: number, failed: number) => void,
): Promise<void> {
  const stamp = formatTime(Date.now());
  let acked = 0;
  let failed = 0;
  for (let start = 0; start < count; start += batch) {
    const end = Math.min(count, start + batch);
    const sends: Promise<void>[] = [];
    for (let i = start; i < end; i++) {
      sends.push(
        room.send(`flood ${stamp} #${i + 1}/${count}`).then(
          () => void (acked += 1),
          (err: unknown) => {
            if (ChatError.is(err, 'CLOSED')) throw err;
            failed += 1;
          },
        ),
      );
    }
    await Promise.all(sends);
    progress(acked, failed);
  }
}
