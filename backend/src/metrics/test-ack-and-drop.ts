import { randomUUID } from 'node:crypto';
import type { AppendInput, AppendResult, MessageStore } from '../store/types.js';

/**
 * TEST ONLY: a store that loses messages after acking them, so tests can check that
 * switchboard-probe (and its canary) notice. With `SWITCHBOARD_TEST_ACK_AND_DROP=<regex>` in the
 * environment, an append whose text matches is neither stored nor published: the store answers it
 * as an already-stored duplicate under a seq no message will ever have, so the node acks it and
 * publishes nothing. Ignored (with a warning) when NODE_ENV=production, as in the Docker image.
 */
export const ACK_AND_DROP_ENV = 'SWITCHBOARD_TEST_ACK_AND_DROP';

const PHANTOM_SEQ_OFFSET = 1_000_000_000;

export function withTestAckAndDrop(store: MessageStore, env: NodeJS.ProcessEnv = process.env): MessageStore {
  const pattern = env[ACK_AND_DROP_ENV];
  if (!pattern) return store;
  if (env.NODE_ENV === 'production') {
    process.emitWarning(`${ACK_AND_DROP_ENV} is ignored with NODE_ENV=production`);
    return store;
  }
  const drop = new RegExp(pattern);
  process.emitWarning(`${ACK_AND_DROP_ENV}: appends matching ${drop} are acked and dropped (test only)`);
  return {
    get kind() {
      return store.kind;
    },
    open: () => store.open(),
    append: async (input: AppendInput): Promise<AppendResult> => {
      if (input.text === undefined || !drop.test(input.text)) return store.append(input);
      const seq = (await store.lastSeq(input.room)) + PHANTOM_SEQ_OFFSET;
      return { message: { ...input, seq, id: randomUUID(), ts: Date.now() }, duplicate: true };
    },
    history: (room, query) => store.history(room, query),
    latest: (room, limit) => store.latest(room, limit),
    lastSeq: (room) => store.lastSeq(room),
    isHealthy: () => store.isHealthy(),
    flush: () => store.flush(),
    close: () => store.close(),
  };
}
