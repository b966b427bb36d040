/**
 * `@switchboard/messages-lib/grpc`: the chat client over gRPC, for Node only (it imports
 * @grpc/grpc-js, so it lives apart from the browser entry). Rooms, messages, outbox and errors
 * are the main entry's.
 */
export {
  type DownloadedFile,
  GrpcChatClient,
  type GrpcChatClientOptions,
  type GrpcClientEvents,
} from './client.js';
export { type GrpcMethod, NODE_HEADER } from './room-link.js';
export { chatErrorOf, endsConnection, isDrain } from './status.js';
export { grpcTarget } from './target.js';
export { findProtoRoot } from './proto.js';
export { Room, type HistoryQuery, type RoomEvents, type RoomState } from '../room.js';
export type { ConnectionState, TokenSource } from '../client.js';
export { ChatError, type ChatErrorOptions, type FailureType } from '../errors.js';
export { LocalStorageOutbox, MemoryOutbox, type OutboxEntry, type OutboxStorage } from '../outbox.js';
export type { ChatMessage, FileRef, SendAck } from '../types.js';
