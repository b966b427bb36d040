/// <reference types="node" />
import { performance } from 'node:perf_hooks';
import { DEFAULT_CHAT_LIMITS } from '@switchboard/protocol';
import type { Room } from '../room.js';
import { describe } from './failures.js';
import type { ProbeLedger, StoredMessage } from './ledger.js';
import { sleep } from './waits.js';

const HISTORY_PAGE = DEFAULT_CHAT_LIMITS.historyMaxLimit;
const HISTORY_TIMEOUT_MS = 30_000;

/**
 * Pages the stored history after `afterSeq` through any joined client of the room, retrying a page
 * that failed (bounded in time) through the next client; each page goes to `page` as it arrives
 * (nothing is kept). Returns an error, or undefined once the whole history was read.
 */
export async function readHistory(
  holders: Room[],
  afterSeq: number,
  signal: AbortSignal | undefined,
  sink: { begin: () => void; page: (messages: StoredMessage[]) => void },
): Promise<string | undefined> {
  const deadline = performance.now() + HISTORY_TIMEOUT_MS;
  let lastError = 'no client of the room is joined';
  sink.begin();
  let cursor = afterSeq;
  for (let attempt = 0; performance.now() < deadline && !signal?.aborted; attempt++) {
    const room = holders[attempt % Math.max(1, holders.length)];
    if (room && room.state === 'joined') {
      try {
        for (;;) {
          const page = await room.fetchHistory({ afterSeq: cursor, limit: HISTORY_PAGE });
          sink.page(page.map(storedOf));
          const last = page.at(-1)?.seq;
          if (page.length < HISTORY_PAGE || last === undefined || last <= cursor) break;
          cursor = last;
        }
        return undefined;
      } catch (err) {
        lastError = describe(err);
      }
    }
    await sleep(250, signal);
  }
  return `could not read the history within ${HISTORY_TIMEOUT_MS / 1000} s: ${lastError}`;
}

/**
 * Checks a room's settled messages against its stored history during the run (see
 * `ProbeLedger.beginStoredSegment`): pages after the room's store cursor up to the segment's end
 * through a joined client. Throws on a failed page; what was checked stays checked, and the next
 * attempt goes on from the cursor.
 */
export async function checkStoredSegment(
  ledger: ProbeLedger,
  roomName: string,
  holders: Room[],
  baseline: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const seg = ledger.beginStoredSegment(roomName);
  if (!seg) return;
  const room = holders.find((r) => r.state === 'joined');
  if (!room) throw new Error('no client of the room is joined');
  for (let cursor = ledger.storeCursor(roomName) ?? baseline; cursor < seg.upTo && !signal?.aborted;) {
    const page = await room.fetchHistory({ afterSeq: cursor, limit: HISTORY_PAGE });
    const next = ledger.checkStoredSegment(seg, page.map(storedOf), page.length >= HISTORY_PAGE);
    if (next <= cursor) break;
    cursor = next;
  }
}

function storedOf(m: { seq: number; clientMsgId: string; text?: string | undefined }): StoredMessage {
  return { seq: m.seq, clientMsgId: m.clientMsgId, text: m.text };
}
