/** GrpcChatClient's (client.ts) calls besides Join: Send and History (unary), Upload and Download. */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { proto } from '@switchboard/protocol';
import type { TokenSource } from '../client.js';
import { ChatError } from '../errors.js';
import type { FileRef } from '../types.js';
import type { ChatStub } from './proto.js';
import type { GrpcMethod } from './room-link.js';
import { chatErrorOf, statusName } from './status.js';

export interface DownloadedFile {
  file: FileRef;
  data: Buffer;
}

/** What a call needs from its client. */
export interface CallSite {
  /** The stub; throws when the client is not connected. */
  stub(): ChatStub;
  metadata(): Promise<grpc.Metadata>;
  /** A call's response headers arrived (they may name the node that served it). */
  servedBy(method: GrpcMethod, headers: grpc.Metadata): void;
}

/** A call's metadata: the token, asked for anew on every call. */
export async function callMetadata(tokenSource: TokenSource | undefined): Promise<grpc.Metadata> {
  const md = new grpc.Metadata();
  let token: string | undefined;
  try {
    token = typeof tokenSource === 'function' ? await tokenSource() : tokenSource;
  } catch (err) {
    throw new ChatError('AUTH', `the token function failed: ${String(err)}`, { cause: err });
  }
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}

export async function unaryCall<T>(
  site: CallSite,
  method: 'send' | 'history',
  request: object,
  what: string,
  timeoutMs: number,
): Promise<T> {
  const stub = site.stub();
  const md = await site.metadata();
  return new Promise<T>((resolve, reject) => {
    const fn = stub[method].bind(stub) as (
      req: object,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: grpc.requestCallback<T>,
    ) => grpc.ClientUnaryCall;
    const call = fn(request, md, { deadline: Date.now() + timeoutMs }, (err, value) => {
      if (err) reject(chatErrorOf(err, what));
      else resolve(value as T);
    });
    call.on('metadata', (h: grpc.Metadata) => site.servedBy(method, h));
  });
}

export async function uploadFile(
  site: CallSite,
  data: Blob | ArrayBuffer | ArrayBufferView,
  name: string,
  contentType: string | undefined,
  timeoutMs: number,
  chunkBytes: number,
): Promise<FileRef> {
  if (typeof name !== 'string' || name.length === 0) throw new ChatError('INVALID', 'file name: required');
  const bytes = await toBytes(data);
  const stub = site.stub();
  const md = await site.metadata();
  const type = contentType ?? (typeof Blob !== 'undefined' && data instanceof Blob ? data.type : '');
  let call!: grpc.ClientWritableStream<proto.UploadChunk>;
  const answer = new Promise<proto.FileRef>((resolve, reject) => {
    call = stub.upload(md, { deadline: Date.now() + timeoutMs }, (err, ref) =>
      err ? reject(err) : resolve(ref ?? {}),
    );
  });
  answer.catch(() => {}); // awaited below: a failure before that is not unhandled
  call.on('metadata', (h: grpc.Metadata) => site.servedBy('upload', h));
  call.on('error', () => {}); // the callback has it
  try {
    call.write({ info: { name, contentType: type || 'application/octet-stream' } });
    for (let i = 0; i < bytes.length; i += chunkBytes) {
      if (!call.write({ data: bytes.subarray(i, i + chunkBytes) })) {
        // a refusal (size limit) ends the call: stop writing then, too
        await Promise.race([once(call, 'drain'), answer.then(() => {})]);
      }
    }
    call.end();
    const ref = await answer;
    if (typeof ref.id !== 'string' || ref.id.length === 0) {
      throw new ChatError('UPLOAD', 'upload: the server answered without a file id');
    }
    return fileRef(ref);
  } catch (err) {
    if (err instanceof ChatError) throw err;
    const s = err as grpc.ServiceError;
    const e = chatErrorOf(s, 'upload refused');
    const tooLarge = s.code === grpc.status.INVALID_ARGUMENT && /exceeds the limit/.test(s.details ?? '');
    throw new ChatError('UPLOAD', e.message, {
      code: typeof s.code === 'number' ? s.code : 0,
      reason: tooLarge ? 'file_too_large' : statusName(s.code),
      cause: err,
    });
  }
}

export async function downloadFile(site: CallSite, id: string, timeoutMs: number): Promise<DownloadedFile> {
  const stub = site.stub();
  const md = await site.metadata();
  const call = stub.download({ id }, md, { deadline: Date.now() + timeoutMs });
  call.on('metadata', (h: grpc.Metadata) => site.servedBy('download', h));
  let file: FileRef | undefined;
  const parts: Buffer[] = [];
  try {
    for await (const chunk of call as AsyncIterable<proto.DownloadChunk>) {
      if (chunk.chunk === 'info' && chunk.info) file = fileRef(chunk.info);
      else if (chunk.chunk === 'data' && chunk.data) parts.push(Buffer.from(chunk.data));
    }
  } catch (err) {
    throw chatErrorOf(err as grpc.ServiceError, `downloading ${id}`);
  }
  if (!file) throw new ChatError('ERROR', `downloading ${id}: the server sent no file info`);
  return { file, data: Buffer.concat(parts) };
}

function fileRef(m: proto.FileRef): FileRef {
  return { id: m.id ?? '', name: m.name ?? '', size: m.size ?? 0, contentType: m.contentType ?? '' };
}

async function toBytes(data: Blob | ArrayBuffer | ArrayBufferView): Promise<Uint8Array> {
  if (typeof Blob !== 'undefined' && data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ChatError('INVALID', 'sendFile: expected a Blob, an ArrayBuffer or a typed array');
}
