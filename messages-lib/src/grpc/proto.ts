import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { proto } from '@switchboard/protocol';
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
 * The options the generated types (`proto.*` of @switchboard/protocol) describe, as the server's
 * (backend/src/bridge/grpc/proto.ts); 64-bit integers as numbers, as seqs and sizes stay below 2^53.
 */
const LOADER_OPTIONS: protoLoader.Options = { ...proto.PROTO_LOADER_OPTIONS };

/** `switchboard.chat.v1.Chat` as grpc-js makes it from the descriptor, typed. */
export interface ChatStub extends grpc.Client {
  join(
    request: proto.JoinRequest,
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<proto.ChatEvent>;
  send(
    request: proto.SendRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<proto.SendAck>,
  ): grpc.ClientUnaryCall;
  history(
    request: proto.HistoryRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<proto.HistoryResponse>,
  ): grpc.ClientUnaryCall;
  upload(
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<proto.FileRef>,
  ): grpc.ClientWritableStream<proto.UploadChunk>;
  download(
    request: proto.DownloadRequest,
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<proto.DownloadChunk>;
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
