import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { EmbeddedMessageStore } from '../../backend/src/store/embedded.js';
import { createMessageStore, StoreError } from '../../backend/src/store/index.js';
import type { MessageStore } from '../../backend/src/store/index.js';
import { describeMessageStoreContract } from '../contract/message-store.contract.js';
import { startProcess } from '../infra/proc.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sb-store-embedded-'));
}

describeMessageStoreContract('embedded', async () => {
  const dir = await tempDir();
  const made: MessageStore[] = [];
  const openStore = async (): Promise<MessageStore> => {
    const store = new EmbeddedMessageStore(join(dir, 'messages'));
    made.push(store);
    await store.open();
    return store;
  };
  return {
    store: await openStore(),
    reopen: openStore,
    cleanup: async () => {
      await Promise.all(made.map((s) => s.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('EmbeddedMessageStore', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is what createMessageStore makes for kind embedded', async () => {
    const store = createMessageStore({ kind: 'embedded', dir });
    expect(store).to.be.instanceOf(EmbeddedMessageStore);
    expect(store.kind).to.equal('embedded');
    expect(store.isHealthy()).to.equal(false);
    await store.open();
    expect(store.isHealthy()).to.equal(true);
    await store.close();
  });

  it('refuses a directory another store in this process holds, naming it', async () => {
    const first = new EmbeddedMessageStore(dir);
    await first.open();
    const second = new EmbeddedMessageStore(dir);
    try {
      const err = await second.open().then(
        () => expect.fail('second open succeeded'),
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StoreError);
      expect((err as StoreError).code).to.equal('UNAVAILABLE');
      expect((err as StoreError).message)
        .to.include(dir)
        .and.include('locked');
      expect(second.isHealthy()).to.equal(false);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it('refuses a directory another process holds, naming it', async () => {
    const holder = startProcess(
      'level-holder',
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { ClassicLevel } from 'classic-level';
         const db = new ClassicLevel(process.argv[1]);
         await db.open();
         console.log('holding');
         setInterval(() => {}, 1000);`,
        dir,
      ],
      { cwd: join(repoRoot, 'backend') },
    );
    try {
      await holder.waitForOutput('holding', 15_000);
      const store = new EmbeddedMessageStore(dir);
      const err = await store.open().then(
        () => expect.fail('open succeeded while another process held the directory'),
        (e: unknown) => e,
      );
      expect((err as StoreError).code).to.equal('UNAVAILABLE');
      expect((err as StoreError).message)
        .to.include(dir)
        .and.include('locked by another process');
    } finally {
      await holder.stop(5000);
    }
    // Released by the holder's exit: now it opens.
    const store = new EmbeddedMessageStore(dir);
    await store.open();
    await store.close();
  });

  it('writes the appends of one tick in one batch (group commit)', async () => {
    const store = new EmbeddedMessageStore(dir);
    await store.open();
    const db = (store as unknown as { db: { batch: (...args: unknown[]) => Promise<void> } }).db;
    const original = db.batch.bind(db);
    const batches: Array<{ ops: number; sync: unknown }> = [];
    db.batch = (ops: unknown, opts: unknown) => {
      batches.push({ ops: (ops as unknown[]).length, sync: (opts as { sync?: boolean }).sync });
      return original(ops, opts);
    };
    try {
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          store.append({ room: `r${i % 4}`, user: 'u', clientMsgId: `m${i}`, text: 't' }),
        ),
      );
      expect(results.map((r) => r.message.seq).sort((a, b) => a - b)).to.deep.equal(
        Array.from({ length: 40 }, (_, i) => Math.floor(i / 4) + 1),
      );
      // Message + idempotency key for each of the 40, in one fsynced write.
      expect(batches).to.deep.equal([{ ops: 80, sync: true }]);
    } finally {
      await store.close();
    }
  });

  it('fails the appends of a failed write, and assigns their seqs again afterwards', async () => {
    const store = new EmbeddedMessageStore(dir);
    await store.open();
    const db = (store as unknown as { db: { batch: (...args: unknown[]) => Promise<void> } }).db;
    const original = db.batch.bind(db);
    await store.append({ room: 'r', user: 'u', clientMsgId: 'a', text: 't' });
    db.batch = () => Promise.reject(new Error('disk on fire'));
    const err = await store.append({ room: 'r', user: 'u', clientMsgId: 'b', text: 't' }).then(
      () => expect.fail('append succeeded'),
      (e: unknown) => e as StoreError,
    );
    expect(err.code).to.equal('UNAVAILABLE');
    expect(err.message).to.include('disk on fire');
    db.batch = original;
    const retry = await store.append({ room: 'r', user: 'u', clientMsgId: 'b', text: 't' });
    expect(retry).to.include({ duplicate: false });
    expect(retry.message.seq).to.equal(2);
    await store.close();
  });
});
