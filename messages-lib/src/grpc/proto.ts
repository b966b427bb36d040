import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ChatError } from '../errors.js';

/** The Chat service's file, relative to the proto root. */
export const CHAT_PROTO = 'switchboard/chat/v1/chat.proto';

/**
 * Where `proto/` may be, in order: a copy inside the package (`messages-lib/proto/`, for a
 * published package), then the repository's (same depth from `src/grpc/` and `dist/grpc/`).
 */
const CANDIDATES = ['../../proto/', '../../../proto/'].map((rel) =>
  fileURLToPath(new URL(rel, import.meta.url)),
);

/**
 * The same loader options as the server (backend/src/bridge/grpc/proto.ts): camelCase fields,
 * 64-bit integers as numbers (seqs and sizes stay below 2^53), `oneof` groups named by a virtual
 * field, unset fields absent. The interfaces below are written against exactly these options.
 */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: true,
};

export interface FileRefMsg {
  id?: string;
  name?: string;
  size?: number;
  contentType?: string;
}

export interface ChatMessageMsg {
  room?: string;
  seq?: number;
  id?: string;
  clientMsgId?: string;
  user?: string;
  text?: string;
  file?: FileRefMsg;
  ts?: number;
}

export interface JoinRequest {
  room: string;
  user: string;
  since?: number;
  resumeToken?: string;
}

export interface ChatEvent {
  seq?: number;
  event?: 'joined' | 'message' | 'presence';
  joined?: { room?: string; lastSeq?: number; node?: string; resumeToken?: string };
  message?: ChatMessageMsg;
  presence?: { room?: string; users?: string[] };
}

export interface SendRequest {
  room: string;
  user: string;
  clientMsgId: string;
  text?: string;
  file?: { id: string };
}

export interface SendAckMsg {
  seq?: number;
  id?: string;
  ts?: number;
}

export interface HistoryRequest {
  room: string;
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
}

export interface HistoryResponse {
  messages?: ChatMessageMsg[];
}

export type UploadChunk = { info: { name: string; contentType: string } } | { data: Uint8Array };

export interface DownloadChunk {
  chunk?: 'info' | 'data';
  info?: FileRefMsg;
  data?: Uint8Array;
}

/** `switchboard.chat.v1.Chat` as grpc-js makes it from the descriptor, typed. */
export interface ChatStub extends grpc.Client {
  join(
    request: JoinRequest,
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<ChatEvent>;
  send(
    request: SendRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<SendAckMsg>,
  ): grpc.ClientUnaryCall;
  history(
    request: HistoryRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<HistoryResponse>,
  ): grpc.ClientUnaryCall;
  upload(
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<FileRefMsg>,
  ): grpc.ClientWritableStream<UploadChunk>;
  download(
    request: { id: string },
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<DownloadChunk>;
}

export type ChatStubCtor = new (
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => ChatStub;

/** The proto root to use: `override` if given (it must hold the chat proto), else the first candidate that does. */
export function findProtoRoot(override?: string): string {
  if (override !== undefined) {
    if (typeof override !== 'string' || override.length === 0) {
      throw new ChatError('CONFIG', 'protoDir: expected a directory path');
    }
    const dir = isAbsolute(override) ? override : resolve(override);
    if (!existsSync(resolve(dir, CHAT_PROTO))) {
      throw new ChatError('CONFIG', `protoDir: ${dir} does not contain ${CHAT_PROTO}`);
    }
    return dir;
  }
  const found = CANDIDATES.find((dir) => existsSync(resolve(dir, CHAT_PROTO)));
  if (!found) {
    throw new ChatError(
      'CONFIG',
      `cannot find ${CHAT_PROTO} (looked in ${CANDIDATES.join(', ')}); pass the proto directory as \`protoDir\``,
    );
  }
  return found;
}

const loaded = new Map<string, ChatStubCtor>();

/** The Chat client class, loaded once per proto root. */
export function chatStubCtor(protoDir?: string): ChatStubCtor {
  const root = findProtoRoot(protoDir);
  let ctor = loaded.get(root);
  if (!ctor) {
    let pkg: grpc.GrpcObject;
    try {
      pkg = grpc.loadPackageDefinition(
        protoLoader.loadSync(CHAT_PROTO, { ...LOADER_OPTIONS, includeDirs: [root] }),
      );
    } catch (err) {
      throw new ChatError('CONFIG', `cannot load ${CHAT_PROTO} from ${root}: ${String(err)}`, { cause: err });
    }
    const service = (pkg as { switchboard?: { chat?: { v1?: { Chat?: unknown } } } }).switchboard?.chat?.v1
      ?.Chat;
    if (typeof service !== 'function') {
      throw new ChatError('CONFIG', `${root}/${CHAT_PROTO} does not define switchboard.chat.v1.Chat`);
    }
    ctor = service as ChatStubCtor;
    loaded.set(root, ctor);
  }
  return ctor;
}
