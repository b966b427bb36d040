import multipart from '@fastify/multipart';
import { ROOM_NAME_RULE, ROOM_PATTERN } from '@switchboard/protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import { TokenError, type TokenVerifier } from '../auth/tokens.js';
import { originAllowed } from '../bridge/ws/ws-endpoint.js';
import { type FileLinks, mayRead, type UploadLimits } from '../files/access.js';
import { FileStoreError, type FileStore } from '../files/file-store.js';

const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const BEARER = /^Bearer\s+(\S+)\s*$/i;

export interface FilesRoutesOptions {
  files: FileStore;
  /** With a verifier, every route needs a valid token (`Authorization: Bearer`, or `?token=`). */
  verifier?: TokenVerifier | undefined;
  /** Signed links (auth mode). */
  links?: FileLinks | undefined;
  uploads: UploadLimits;
  /** Browser origins allowed to upload besides the server's own (as for the bridge). */
  allowedOrigins: string[];
}

type Query = { token?: string; room?: string; exp?: string; sig?: string };

/**
 * `POST /files` (multipart, one part named `file`, optional `?room=`), `GET /files/:id` and, with
 * tokens, `GET /files/:id/link` (a short-lived signed URL). The bytes stream to and from the file
 * store; nothing the client sends becomes a path. See docs/security.md for who may read what.
 */
export async function filesRoutes(app: FastifyInstance, opts: FilesRoutesOptions): Promise<void> {
  const { files, verifier, links, uploads } = opts;
  await app.register(multipart, {
    // One byte over the limit, so that an upload of exactly one byte too many is seen as too large
    // by the store (which then deletes it) rather than silently cut to the limit.
    limits: { files: 1, fileSize: files.maxBytes + 1, fields: 0, parts: 1, headerPairs: 100 },
    throwFileSizeLimit: true,
  });

  /** The caller's principal (auth mode), undefined in open mode; null when refused (reply sent). */
  const principalOf = async (
    req: FastifyRequest<{ Querystring: Query }>,
    reply: FastifyReply,
  ): Promise<Principal | undefined | null> => {
    if (!verifier) return undefined;
    const header = req.headers.authorization;
    const token = (header ? BEARER.exec(header)?.[1] : undefined) ?? req.query.token;
    if (!token) {
      await reply.code(401).send({ error: 'not_logged_in', message: 'send "Authorization: Bearer <token>"' });
      return null;
    }
    try {
      return await verifier.verify(token);
    } catch (err) {
      const message = err instanceof TokenError ? err.message : 'token check failed';
      await reply.code(401).send({ error: 'auth_error', message });
      return null;
    }
  };

  app.post<{ Querystring: Query }>('/files', async (req, reply) => {
    // A form on another site can post here with the user's cookies or network position.
    if (!originAllowed(req.headers, opts.allowedOrigins)) {
      return reply
        .code(403)
        .send({ error: 'origin_not_allowed', message: 'cross-origin uploads are refused' });
    }
    const principal = await principalOf(req, reply);
    if (principal === null) return reply;
    const room = req.query.room;
    if (room !== undefined && !ROOM_PATTERN.test(room)) {
      return reply.code(400).send({ error: 'invalid_room', message: `room: ${ROOM_NAME_RULE}` });
    }
    if (room !== undefined && principal?.rooms && !principal.rooms.has(room)) {
      return reply.code(403).send({ error: 'access_denied', message: `room ${room} is not in the token` });
    }
    if (!req.isMultipart()) {
      return reply
        .code(415)
        .send({ error: 'not_multipart', message: 'send multipart/form-data with a part named "file"' });
    }
    const who = principal ? `user:${principal.user}` : `ip:${req.socket.remoteAddress ?? ''}`;
    const quota = uploads.start(who);
    if (!quota.ok) {
      reply.header('connection', 'close');
      return reply.code(429).send({ error: 'upload_limit', message: quota.message });
    }
    let part;
    try {
      part = await req.file();
    } catch (err) {
      return reply.code(400).send({ error: 'bad_multipart', message: (err as Error).message });
    }
    if (!part || part.fieldname !== 'file') {
      return reply.code(400).send({ error: 'missing_file', message: 'send one part named "file"' });
    }
    const limit = Math.min(files.maxBytes, quota.bytesLeft);
    try {
      const ref = await files.save(
        part.file,
        part.filename,
        part.mimetype,
        { user: principal?.user, room },
        limit,
      );
      uploads.used(who, ref.size);
      return reply.code(201).send(ref);
    } catch (err) {
      part.file.resume(); // let busboy finish reading so the connection is reusable
      if (err instanceof FileStoreError || (err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
        const tooLarge = err instanceof FileStoreError ? err.code === 'TOO_LARGE' : true;
        if (tooLarge) {
          uploads.used(who, limit);
          if (limit < files.maxBytes) {
            return reply.code(429).send({
              error: 'upload_limit',
              message: `the upload exceeds what is left of the hourly upload volume (${uploads.config.bytesPerHour} bytes an hour)`,
            });
          }
          return reply.code(413).send({
            error: 'file_too_large',
            message: `the limit is ${files.maxBytes} bytes`,
            limit: files.maxBytes,
          });
        }
        return reply
          .code(400)
          .send({ error: (err as FileStoreError).code.toLowerCase(), message: (err as Error).message });
      }
      throw err;
    }
  });

  app.get<{ Params: { id: string }; Querystring: Query }>('/files/:id/link', async (req, reply) => {
    if (!links)
      return reply.code(404).send({ error: 'not_found', message: 'signed links exist with tokens only' });
    const principal = await principalOf(req, reply);
    if (principal === null) return reply;
    try {
      const meta = await files.meta(req.params.id);
      if (!principal || !mayRead(meta, principal)) throw new FileStoreError('NOT_FOUND', 'no such file');
      return reply.header('cache-control', 'no-store').send(links.sign(meta.id));
    } catch (err) {
      return fileError(reply, err);
    }
  });

  app.get<{ Params: { id: string }; Querystring: Query }>('/files/:id', async (req, reply) => {
    try {
      const signed = links?.verify(req.params.id, req.query.exp, req.query.sig) ?? false;
      if (verifier && !signed) {
        const principal = await principalOf(req, reply);
        if (principal === null) return reply;
        // Not the caller's to read: as unknown as a missing file.
        if (!principal || !mayRead(await files.meta(req.params.id), principal))
          throw new FileStoreError('NOT_FOUND', `no file with id ${req.params.id}`);
      }
      const { ref, stream } = await files.open(req.params.id);
      const disposition = INLINE_TYPES.has(ref.contentType) ? 'inline' : 'attachment';
      return reply
        .header('content-type', ref.contentType)
        .header('content-length', String(ref.size))
        .header('content-disposition', `${disposition}; filename*=UTF-8''${encodeURIComponent(ref.name)}`)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', verifier ? 'private, no-store' : 'private, max-age=31536000, immutable')
        .send(stream);
    } catch (err) {
      return fileError(reply, err);
    }
  });
}

function fileError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof FileStoreError) {
    const status = err.code === 'INVALID_ID' ? 400 : 404;
    return reply.code(status).send({ error: err.code.toLowerCase(), message: err.message });
  }
  throw err;
}
