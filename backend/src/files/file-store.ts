import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileRef } from '../store/types.js';

export type FileErrorCode = 'TOO_LARGE' | 'NOT_FOUND' | 'INVALID_ID' | 'EMPTY' | 'FORBIDDEN';

/** Who uploaded a file and the room it belongs to (set at upload, or by the first message). */
export interface FileOwner {
  /** The uploader's verified user (auth mode only). */
  user?: string | undefined;
  room?: string | undefined;
}

export type FileMeta = FileRef & FileOwner;

export class FileStoreError extends Error {
  override readonly name = 'FileStoreError';
  constructor(
    readonly code: FileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const MAX_FILE_NAME_LENGTH = 255;
const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CONTENT_TYPE_PATTERN = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;

/**
 * Keeps only a display name: whatever path the client sent is cut to its last segment and
 * stripped of control characters. It is stored as metadata and never used as a path.
 */
export function sanitizeFileName(name: string | undefined): string {
  const last = (name ?? '').split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = last.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  const safe = clean === '.' || clean === '..' ? '' : clean;
  return (safe || 'file').slice(0, MAX_FILE_NAME_LENGTH);
}

/** Lower-cased `type/subtype` without parameters, or octet-stream for anything unusual. */
export function sanitizeContentType(value: string | undefined): string {
  const base = (value ?? '').split(';')[0]!.trim().toLowerCase();
  return CONTENT_TYPE_PATTERN.test(base) ? base : 'application/octet-stream';
}

/**
 * File bytes on a directory (the persistent volume shared by every node): `<dir>/<id[0..2]>/<id>`
 * with a `<id>.json` beside it for the metadata. Ids are server-made UUIDs, the only thing that
 * ever becomes part of a path.
 */
export class FileStore {
  constructor(
    private readonly dir: string,
    readonly maxBytes: number,
  ) {}

  async init(): Promise<void> {
    await mkdir(join(this.dir, 'tmp'), { recursive: true });
    await access(this.dir, constants.W_OK);
  }

  /**
   * Streams the upload to disk; refuses (and deletes the partial file) past `maxBytes`, or past
   * `limit` when smaller. Nothing of a refused upload stays on disk.
   */
  async save(
    source: Readable,
    name: string | undefined,
    contentType: string | undefined,
    owner: FileOwner = {},
    limit: number = this.maxBytes,
  ): Promise<FileRef> {
    const id = randomUUID();
    const tmp = join(this.dir, 'tmp', `${id}.part`);
    let size = 0;
    async function* counted(input: Readable): AsyncGenerator<Buffer> {
      for await (const chunk of input) {
        size += (chunk as Buffer).length;
        if (size > limit) throw new FileStoreError('TOO_LARGE', `file exceeds the limit of ${limit} bytes`);
        yield chunk as Buffer;
      }
    }
    const out = createWriteStream(tmp, { flags: 'wx' });
    try {
      await pipeline(source, counted, out);
      if (size === 0) throw new FileStoreError('EMPTY', 'the file is empty');
      const ref: FileRef = {
        id,
        name: sanitizeFileName(name),
        size,
        contentType: sanitizeContentType(contentType),
      };
      const shard = join(this.dir, id.slice(0, 2));
      await mkdir(shard, { recursive: true });
      await rename(tmp, join(shard, id));
      // Metadata last: a file without it is unreachable, never half-visible.
      const meta = {
        ...ref,
        ...(owner.user !== undefined ? { user: owner.user } : {}),
        ...(owner.room !== undefined ? { room: owner.room } : {}),
        createdAt: Date.now(),
      };
      await writeFile(join(shard, `${id}.json`), JSON.stringify(meta), { flag: 'wx' });
      return ref;
    } catch (err) {
      // A refusal can come before the file's open() has finished: removed before then, the file
      // would appear afterwards and stay. The stream closes once it has opened and been destroyed.
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async stat(id: string): Promise<FileRef> {
    const m = await this.meta(id);
    return { id: m.id, name: m.name, size: m.size, contentType: m.contentType };
  }

  /** The file's reference with its uploader and room. */
  async meta(id: string): Promise<FileMeta> {
    const { meta } = this.paths(id);
    let text: string;
    try {
      text = await readFile(meta, 'utf8');
    } catch {
      throw new FileStoreError('NOT_FOUND', `no file with id ${id}`);
    }
    const parsed = JSON.parse(text) as FileMeta;
    return {
      id: parsed.id,
      name: parsed.name,
      size: parsed.size,
      contentType: parsed.contentType,
      ...(typeof parsed.user === 'string' ? { user: parsed.user } : {}),
      ...(typeof parsed.room === 'string' ? { room: parsed.room } : {}),
    };
  }

  /**
   * A message in `room` by `user` references the file: it must have been uploaded for that room,
   * or for none yet (then it belongs to `room` from now on); with a verified user, a file not yet
   * in a room can be attached only by its uploader. Otherwise FORBIDDEN: an id seen in one room
   * cannot carry the file into another.
   */
  async attach(id: string, room: string, user: string | undefined): Promise<FileRef> {
    const m = await this.meta(id);
    const ref = { id: m.id, name: m.name, size: m.size, contentType: m.contentType };
    if (m.room === room) return ref;
    if (m.room !== undefined) throw new FileStoreError('FORBIDDEN', 'the file belongs to another room');
    if (m.user !== undefined && m.user !== user)
      throw new FileStoreError('FORBIDDEN', 'the file was uploaded by another user');
    const { meta } = this.paths(id);
    const tmp = join(this.dir, 'tmp', `${id}.${randomUUID()}.json`);
    const text = await readFile(meta, 'utf8');
    await writeFile(tmp, JSON.stringify({ ...(JSON.parse(text) as object), room }));
    await rename(tmp, meta);
    return ref;
  }

  async open(id: string): Promise<{ ref: FileRef; stream: Readable }> {
    const ref = await this.stat(id);
    const { data } = this.paths(id);
    await stat(data).catch(() => {
      throw new FileStoreError('NOT_FOUND', `no file with id ${id}`);
    });
    return { ref, stream: createReadStream(data) };
  }

  private paths(id: string): { data: string; meta: string } {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw new FileStoreError('INVALID_ID', 'a file id is a lower-case UUID');
    }
    const shard = join(this.dir, id.slice(0, 2));
    return { data: join(shard, id), meta: join(shard, `${id}.json`) };
  }
}
