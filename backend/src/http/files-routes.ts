import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import { FileStoreError, type FileStore } from '../files/file-store.js';

const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/**
 * `POST /files` (multipart, one part named `file`) and `GET /files/:id`. The bytes stream to and
 * from the file store; nothing the client sends becomes a path.
 */
export async function filesRoutes(app: FastifyInstance, opts: { files: FileStore }): Promise<void> {
  const { files } = opts;
  await app.register(multipart, {
    limits: { files: 1, fileSize: files.maxBytes, fields: 0, parts: 1, headerPairs: 100 },
    throwFileSizeLimit: true,
  });

  app.post('/files', async (req, reply) => {
    if (!req.isMultipart()) {
      return reply
        .code(415)
        .send({ error: 'not_multipart', message: 'send multipart/form-data with a part named "file"' });
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
    try {
      const ref = await files.save(part.file, part.filename, part.mimetype);
      if (part.file.truncated)
        throw new FileStoreError('TOO_LARGE', `file exceeds the limit of ${files.maxBytes} bytes`);
      return reply.code(201).send(ref);
    } catch (err) {
      part.file.resume(); // let busboy finish reading so the connection is reusable
      if (err instanceof FileStoreError || (err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
        const tooLarge = err instanceof FileStoreError ? err.code === 'TOO_LARGE' : true;
        if (tooLarge) {
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

  app.get<{ Params: { id: string } }>('/files/:id', async (req, reply) => {
    try {
      const { ref, stream } = await files.open(req.params.id);
      const disposition = INLINE_TYPES.has(ref.contentType) ? 'inline' : 'attachment';
      return reply
        .header('content-type', ref.contentType)
        .header('content-length', String(ref.size))
        .header('content-disposition', `${disposition}; filename*=UTF-8''${encodeURIComponent(ref.name)}`)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'private, max-age=31536000, immutable')
        .send(stream);
    } catch (err) {
      if (err instanceof FileStoreError) {
        const status = err.code === 'INVALID_ID' ? 400 : 404;
        return reply.code(status).send({ error: err.code.toLowerCase(), message: err.message });
      }
      throw err;
    }
  });
}
