export {
  ChatClient,
  type ChatClientOptions,
  type ClientEvents,
  type ConnectionState,
  type FetchLike,
  type FetchResponseLike,
  type TokenSource,
  type WebSocketCtor,
  type WebSocketLike,
} from './client.js';
export { Room, type HistoryQuery, type RoomEvents, type RoomState } from './room.js';
export { ChatError, type ChatErrorOptions, type FailureType } from './errors.js';
export {
  LocalStorageOutbox,
  MemoryOutbox,
  type OutboxEntry,
  type OutboxStorage,
  type StorageLike,
} from './outbox.js';
export { TypedEmitter, type Listener } from './emitter.js';
export { isStoreBusy, sendRetryDelay } from './send-retry.js';
export { backoffDelay, endpointsOf, type BackoffOptions, type Endpoints } from './util.js';
export type { ChatMessage, FileRef, JoinReply, PresenceUpdate, SendAck } from './types.js';
