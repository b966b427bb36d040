import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  FileStore,
  FileStoreError,
  sanitizeContentType,
  sanitizeFileName,
} from '../../backend/src/files/file-store.js';

describe('file store', () => {
  let dir: string;
  let files: FileStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-files-unit-'));
    files = new FileStore(dir, 1024);
    await files.init();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps only a display name from whatever path the client sends', () => {
    expect(sanitizeFileName('../../etc/passwd')).to.equal('passwd');
    expect(sanitizeFileName('C:\\Users\\me\\photo.png')).to.equal('photo.png');
    expect(sanitizeFileName('..')).to.equal('file');
    expect(sanitizeFileName('a\u0000b\nc.txt')).to.equal('abc.txt');
    expect(sanitizeFileName('')).to.equal('file');
    expect(sanitizeFileName(undefined)).to.equal('file');
    expect(sanitizeFileName('x'.repeat(400))).to.have.length(255);
  });

  it('records a plain content type, or octet-stream for anything odd', () => {
    expect(sanitizeContentType('Image/PNG; charset=x')).to.equal('image/png');
    expect(sanitizeContentType('text/html<script>')).to.equal('application/octet-stream');
    expect(sanitizeContentType(undefined)).to.equal('application/octet-stream');
  });

  it('stores bytes under a server-made id and reads them back', async () => {
    const ref = await files.save(
      Readable.from([Buffer.from('hello '), Buffer.from('world')]),
      '../x.txt',
      'text/plain',
    );
    expect(ref).to.deep.include({ name: 'x.txt', size: 11, contentType: 'text/plain' });
    expect(await files.stat(ref.id)).to.deep.equal(ref);
    const { stream } = await files.open(ref.id);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).to.equal('hello world');
    const shard = await readdir(join(dir, ref.id.slice(0, 2)));
    expect(shard.sort()).to.deep.equal([ref.id, `${ref.id}.json`].sort());
    expect(JSON.parse(await readFile(join(dir, ref.id.slice(0, 2), `${ref.id}.json`), 'utf8'))).to.include({
      name: 'x.txt',
    });
  });

  it('refuses a file over the limit and leaves nothing behind', async () => {
    const err = await files
      .save(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), 'big', 'a/b')
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(FileStoreError).with.property('code', 'TOO_LARGE');
    expect(await readdir(join(dir, 'tmp'))).to.deep.equal([]);
    expect((await readdir(dir)).sort()).to.deep.equal(['tmp']);
  });

  it('refuses empty files, malformed ids and unknown ids', async () => {
    const empty = await files.save(Readable.from([]), 'e', 'a/b').catch((e: unknown) => e);
    expect(empty).to.be.instanceOf(FileStoreError).with.property('code', 'EMPTY');
    for (const id of ['../../etc/passwd', 'ABC', '', '00000000-0000-4000-8000-00000000000G']) {
      const err = await files.stat(id).catch((e: unknown) => e);
      expect(err, id).to.be.instanceOf(FileStoreError).with.property('code', 'INVALID_ID');
    }
    const missing = await files.stat('00000000-0000-4000-8000-000000000000').catch((e: unknown) => e);
    expect(missing).to.be.instanceOf(FileStoreError).with.property('code', 'NOT_FOUND');
  });

  it('binds a file to its room: the first message claims it, another room or user is refused', async () => {
    const mine = await files.save(Readable.from([Buffer.from('abc')]), 'a', 'a/b', { user: 'ana' });
    const other = await files.attach(mine.id, 'r1', 'bob').catch((e: unknown) => e);
    expect(other, 'not the uploader').to.be.instanceOf(FileStoreError).with.property('code', 'FORBIDDEN');
    expect((await files.attach(mine.id, 'r1', 'ana')).id).to.equal(mine.id);
    expect((await files.meta(mine.id)).room).to.equal('r1');
    expect((await files.attach(mine.id, 'r1', 'bob')).id, 'same room, anyone').to.equal(mine.id);
    const moved = await files.attach(mine.id, 'r2', 'ana').catch((e: unknown) => e);
    expect(moved).to.be.instanceOf(FileStoreError).with.property('code', 'FORBIDDEN');
    expect(await readdir(join(dir, 'tmp'))).to.deep.equal([]);
  });

  it('refuses past a limit below maxBytes (the quota left) and keeps nothing', async () => {
    const err = await files
      .save(Readable.from([Buffer.alloc(300)]), 'q', 'a/b', {}, 200)
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(FileStoreError).with.property('code', 'TOO_LARGE');
    expect((await readdir(dir)).sort()).to.deep.equal(['tmp']);
    expect(await readdir(join(dir, 'tmp'))).to.deep.equal([]);
  });
});
