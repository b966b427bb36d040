/** Upload and Download of `switchboard.chat.v1.Chat` (chat-service.ts): to and from the file store. */
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { type ServerReadableStream, type ServerWritableStream, status } from '@grpc/grpc-js';
import { mayRead, type UploadLimits } from '../../files/access.js';
import { FileStoreError, type FileStore } from '../../files/file-store.js';
import { ipOfPeer } from '../limits.js';
import { serverMetadata } from './calls.js';
import { authenticateCall, type GrpcBridgeContext } from './context.js';
import type { proto } from '@switchboard/protocol';
import { GrpcError, toGrpcError } from './status.js';

const DOWNLOAD_CHUNK = 64 * 1024;

export async function uploadToStore(
  ctx: GrpcBridgeContext,
  files: FileStore,
  uploads: UploadLimits | undefined,
  call: ServerReadableStream<proto.UploadChunk, proto.FileRef>,
): Promise<proto.FileRef> {
  const principal = await authenticateCall(ctx, call.metadata);
  const who = principal ? `user:${principal.user}` : `ip:${ipOfPeer(call.getPeer())}`;
  const quota = uploads?.start(who) ?? { ok: true as const, bytesLeft: files.maxBytes };
  if (!quota.ok) throw new GrpcError(status.RESOURCE_EXHAUSTED, `upload_limit: ${quota.message}`);
  const limit = Math.min(files.maxBytes, quota.bytesLeft);
  const bytes = new PassThrough();
  // save() reports the stream's errors; a refusal before save() starts must not crash the node
  bytes.on('error', () => {});
  let info: { name?: string; contentType?: string } | undefined;
  let bad: GrpcError | undefined;
  // The name and content type come with the first chunk: save() must not start before it.
  let headed!: () => void;
  const head = new Promise<void>((resolve) => (headed = resolve));
  // Not waited for: the pump turns its own failures into `bad` and ends with the call.
  void (async () => {
    try {
      for await (const chunk of call as AsyncIterable<proto.UploadChunk>) {
        if (chunk.chunk === 'info') {
          if (info) throw new GrpcError(status.INVALID_ARGUMENT, 'info: only the first chunk carries info');
          info = chunk.info ?? {};
          headed();
          continue;
        }
        if (!info) throw new GrpcError(status.INVALID_ARGUMENT, 'info: the first chunk must carry info');
        if (chunk.chunk !== 'data' || !chunk.data)
          throw new GrpcError(status.INVALID_ARGUMENT, 'chunk: expected info or data');
        if (!bytes.write(chunk.data)) await once(bytes, 'drain');
      }
      if (!info) throw new GrpcError(status.INVALID_ARGUMENT, 'info: the first chunk must carry info');
      bytes.end();
    } catch (err) {
      bad = err instanceof GrpcError ? err : new GrpcError(status.CANCELLED, 'upload interrupted');
      bytes.destroy(bad);
    } finally {
      headed();
    }
  })().catch((err: unknown) => ctx.options.log.warn({ err: String(err) }, 'gRPC: upload pump failed'));
  try {
    await head;
    if (bad) throw bad;
    const ref = await files.save(bytes, info?.name, info?.contentType, { user: principal?.user }, limit);
    uploads?.used(who, ref.size);
    return { id: ref.id, name: ref.name, size: ref.size, contentType: ref.contentType };
  } catch (err) {
    if (err instanceof FileStoreError && err.code === 'TOO_LARGE') uploads?.used(who, limit);
    if (err instanceof FileStoreError && err.code === 'TOO_LARGE' && limit < files.maxBytes)
      throw new GrpcError(status.RESOURCE_EXHAUSTED, 'upload_limit: the hourly upload volume is used up');
    // The store's refusal (e.g. over the size limit) wins over the pump noticing that the store
    // stopped reading: which of the two settles first is a race.
    if (err instanceof FileStoreError) throw new GrpcError(status.INVALID_ARGUMENT, `file: ${err.message}`);
    if (bad) throw bad;
    throw err;
  } finally {
    // stop reading a refused upload: the client gets its status now
    bytes.destroy();
  }
}

export async function downloadFromStore(
  ctx: GrpcBridgeContext,
  files: FileStore,
  call: ServerWritableStream<proto.DownloadRequest, proto.DownloadChunk>,
): Promise<void> {
  const fail = (err: unknown): void => {
    let e = toGrpcError(err);
    if (err instanceof FileStoreError)
      e = new GrpcError(err.code === 'INVALID_ID' ? status.INVALID_ARGUMENT : status.NOT_FOUND, err.message);
    call.emit('error', { code: e.code, details: e.details, metadata: e.metadata });
  };
  let admitted: () => void;
  try {
    admitted = ctx.admission.stream(call.getPeer());
  } catch (err) {
    return fail(err);
  }
  call.on('close', admitted);
  call.on('cancelled', admitted);
  try {
    const principal = await authenticateCall(ctx, call.metadata);
    // Not the caller's to read: as unknown as a missing file.
    if (principal && !mayRead(await files.meta(call.request.id ?? ''), principal))
      throw new FileStoreError('NOT_FOUND', `no file with id ${call.request.id}`);
    const { ref, stream } = await files.open(call.request.id ?? '');
    call.sendMetadata(serverMetadata(ctx));
    call.on('cancelled', () => stream.destroy());
    call.write({ info: { id: ref.id, name: ref.name, size: ref.size, contentType: ref.contentType } });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (let i = 0; i < chunk.length; i += DOWNLOAD_CHUNK) {
        if (call.cancelled) return;
        if (!call.write({ data: chunk.subarray(i, i + DOWNLOAD_CHUNK) })) {
          await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
        }
      }
    }
    call.end();
  } catch (err) {
    fail(err);
  } finally {
    admitted();
  }
}
