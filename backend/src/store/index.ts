import { EmbeddedMessageStore } from './embedded.js';
import { MongoMessageStore } from './mongodb.js';
import type { MongoMessageStoreOptions } from './mongodb.js';
import type { MessageStore } from './types.js';

export * from './types.js';
export { EmbeddedMessageStore } from './embedded.js';
export { MongoMessageStore, type MongoMessageStoreOptions, type StoreLogger } from './mongodb.js';
export { STORE_LIMITS } from './validate.js';

export type MessageStoreOptions =
  { kind: 'embedded'; dir: string } | ({ kind: 'mongodb' } & MongoMessageStoreOptions);

/** A store that is not yet open: the caller (the composition root) calls `open()`. */
export function createMessageStore(options: MessageStoreOptions): MessageStore {
  switch (options.kind) {
    case 'embedded':
      return new EmbeddedMessageStore(options.dir);
    case 'mongodb': {
      const { kind: _kind, ...mongo } = options;
      return new MongoMessageStore(mongo);
    }
  }
}
