/**
 * What open() sets up in the database once connected: the indexes, the store's epoch, and the room
 * directory of a database written before there was one.
 */
import type { Collection, MongoClient } from 'mongodb';
import { newEpoch } from '../validate.js';
import type { MessageDoc, RoomDoc } from './documents.js';
import { ignoreInsertRace } from './errors.js';
import type { ResolvedOptions, StoreLogger } from './options.js';

/** `<prefix>meta`'s one document: the store's epoch (see MessageStore.epoch). */
interface EpochDoc {
  _id: string;
  epoch: string;
}

/** `<prefix>meta`'s marker: the room directory lists every room of the messages collection. */
interface DirectoryDoc {
  _id: string;
  complete: boolean;
  at: number;
}

const DIRECTORY_MARKER = 'rooms-directory';
/** Rooms upserted per command when the directory is built from an older database. */
const DIRECTORY_BUILD_BATCH = 1000;

export interface PreparedDatabase {
  messages: Collection<MessageDoc>;
  rooms: Collection<RoomDoc>;
  epoch: string;
}

/** On a connected client: the indexes, then the epoch, then the room directory (built if missing). */
export async function prepareDatabase(
  client: MongoClient,
  opts: ResolvedOptions,
  log: StoreLogger,
): Promise<PreparedDatabase> {
  const coll = client.db(opts.dbName).collection<MessageDoc>(`${opts.collectionPrefix}messages`);
  // room_seq serves every read (ranges, sorts, the max) and keeps seqs unique per room across
  // nodes; room_clientMsgId makes appends idempotent and serves the lookup of a retry.
  // One createIndex each: FerretDB 1.24 drops the connection on a createIndexes of two indexes
  // that both exist already (a second node opening the collection).
  await coll.createIndex({ room: 1, seq: 1 }, { unique: true, name: 'room_seq' });
  await coll.createIndex({ room: 1, clientMsgId: 1 }, { unique: true, name: 'room_clientMsgId' });
  const db = client.db(opts.dbName);
  const epoch = await readEpoch(db.collection<EpochDoc>(`${opts.collectionPrefix}meta`));
  const rooms = db.collection<RoomDoc>(`${opts.collectionPrefix}rooms`);
  await buildDirectory(coll, rooms, db.collection<DirectoryDoc>(`${opts.collectionPrefix}meta`), log);
  return { messages: coll, rooms, epoch };
}

/**
 * The database's epoch, made by the first node to open it: an upsert that only inserts, then a
 * read, so that every node agrees whichever inserted. A dropped database starts a new epoch.
 */
async function readEpoch(meta: Collection<EpochDoc>): Promise<string> {
  // Two nodes inserting at once: one wins, the other reads its epoch.
  await meta
    .updateOne({ _id: 'epoch' }, { $setOnInsert: { epoch: newEpoch() } }, { upsert: true })
    .catch(ignoreInsertRace);
  const doc = await meta.findOne({ _id: 'epoch' });
  if (!doc) throw new Error('the epoch document vanished while opening');
  return doc.epoch;
}

/**
 * Lists every room of the messages collection in the directory, once per database: a database
 * written by a version without the directory gets it on its first open by this one (one distinct
 * over room_seq, then upserts). A marker in meta says it is done; nodes opening at once do it
 * twice, harmlessly (upserts that only insert).
 */
async function buildDirectory(
  messages: Collection<MessageDoc>,
  rooms: Collection<RoomDoc>,
  meta: Collection<DirectoryDoc>,
  log: StoreLogger,
): Promise<void> {
  if (await meta.findOne({ _id: DIRECTORY_MARKER })) return;
  const names = (await messages.distinct('room')) as string[];
  const now = Date.now();
  for (let i = 0; i < names.length; i += DIRECTORY_BUILD_BATCH) {
    await rooms
      .bulkWrite(
        names.slice(i, i + DIRECTORY_BUILD_BATCH).map((room) => ({
          updateOne: { filter: { _id: room }, update: { $setOnInsert: { created: now } }, upsert: true },
        })),
        { ordered: false },
      )
      .catch(ignoreInsertRace);
  }
  await meta
    .updateOne({ _id: DIRECTORY_MARKER }, { $set: { complete: true, at: now } }, { upsert: true })
    .catch(ignoreInsertRace);
  if (names.length > 0) log.info({ rooms: names.length }, 'message store: room directory built');
}
