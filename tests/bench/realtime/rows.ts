/** The benchmark rows beyond single-node fan-out: cross-node, durable ingest, reconnect storm, footprint. */
import { MongoClient } from 'mongodb';
import { MongoMessageStore } from '../../../backend/src/store/mongodb.js';
import { startFerretDb } from '../../infra/ferretdb.js';
import { startHazelcastCluster } from '../../infra/hazelcast.js';
import { runFanoutInterleaved } from './fanout.js';
import { LoadGen, rssBytes, sleep } from './harness.js';
import type { Reply, ServerKind } from './protocol.js';
import type { Row } from './report.js';
import {
  type Server,
  startCentrifugo,
  startRawWs,
  startRedis,
  startSocketIo,
  startSwitchboard,
} from './servers.js';

export interface Settings {
  quick: boolean;
  subscribers: number;
  fixedRate: number;
  rates: number[];
  stepMs: number;
  fixedRounds: number;
}
type Log = (line: string) => void;

/** The node lease of the storm row: a SIGKILLed node's rooms move once its lease runs out. */
const STORM_LEASE_MS = 3_000;

/**
 * Real Hazelcast (one member) and FerretDB: what a Switchboard cluster needs, started here. The
 * nodes keep the default lease (CLUSTER_LEASE_MS, 10 s) unless one is given.
 */
async function clusterInfra(leaseMs?: number) {
  const [hz, db] = await Promise.all([startHazelcastCluster({ members: 1 }), startFerretDb()]);
  const env = {
    CLUSTER_MODE: 'hazelcast',
    HAZELCAST_MEMBERS: hz.members.map((m) => m.address).join(','),
    HAZELCAST_CLUSTER_NAME: hz.clusterName,
    ...(leaseMs === undefined ? {} : { CLUSTER_LEASE_MS: String(leaseMs) }),
    STORE: 'mongodb',
    MONGO_URL: db.url,
    MONGO_DB: `bench_${Date.now().toString(36)}`,
  };
  return {
    env,
    pids: () => [...hz.members.map((m) => m.proc.pid), db.proc.pid],
    stop: () => Promise.allSettled([hz.stop(), db.stop()]),
  };
}

/** Centrifugo runs in every row it has unless BENCH_SYSTEMS leaves it out (`ws,sio,sb`). */
const centWanted = (): boolean => (process.env.BENCH_SYSTEMS ?? 'cent').split(',').includes('cent');

async function stopAllServers(servers: Server[]): Promise<void> {
  await Promise.allSettled(servers.map((s) => s.proc.stop()));
}

export async function runCrossNode(s: Settings, log: Log): Promise<Row[]> {
  const rates = s.rates.filter((r) => r <= (s.quick ? 40_000 : 80_000));
  const withCent = centWanted();
  log(
    'cross-node: Socket.IO + Redis adapter (3 processes)' +
      (withCent ? ', Centrifugo (3 nodes, Redis engine, a Redis of its own)' : '') +
      ' and Switchboard (3 nodes on Hazelcast + FerretDB), interleaved',
  );
  const servers: Server[] = [];
  let infra: Awaited<ReturnType<typeof clusterInfra>> | undefined;
  try {
    const redis = await startRedis();
    servers.push(redis);
    const sios: Server[] = [];
    for (const i of [0, 1, 2]) sios.push(await startSocketIo(`socket.io-${i}`, redis.url));
    servers.push(...sios);
    // Centrifugo's own redis-server, so that each system's CPU counts only its own Redis.
    const cents: Server[] = [];
    let centRedis: Server | undefined;
    if (withCent) {
      centRedis = await startRedis();
      servers.push(centRedis);
      for (const i of [0, 1, 2])
        cents.push(await startCentrifugo(`centrifugo-${i}`, { redisUrl: centRedis.url, log }));
      servers.push(...cents);
    }
    infra = await clusterInfra();
    const nodes: Server[] = [];
    for (const i of [0, 1, 2]) nodes.push(await startSwitchboard(`switchboard-${i}`, infra.env));
    servers.push(...nodes);
    const common = {
      subscribers: s.subscribers,
      rates,
      fixedRate: s.fixedRate,
      stepMs: s.stepMs,
      generators: 2,
      repeatFixed: s.fixedRounds - 1,
      log,
    };
    const cluster = infra;
    const centRedisPid = centRedis?.proc.pid;
    const results = await runFanoutInterleaved([
      {
        ...common,
        kind: 'sio',
        urls: sios.map((x) => x.url),
        pubUrl: sios[0]!.url,
        serverPids: () => [...sios.map((x) => x.proc.pid), redis.proc.pid],
      },
      ...(centRedisPid === undefined
        ? []
        : [
            {
              ...common,
              kind: 'cent' as const,
              urls: cents.map((x) => x.url),
              pubUrl: cents[0]!.url,
              secret: cents[0]!.secret,
              serverPids: () => [...cents.map((x) => x.proc.pid), centRedisPid],
            },
          ]),
      {
        ...common,
        kind: 'sb',
        urls: nodes.map((n) => n.url),
        pubUrl: nodes[0]!.url,
        serverPids: () => [...nodes.map((n) => n.proc.pid), ...cluster.pids()],
      },
    ]);
    const sio = results[0]!;
    const sb = results[results.length - 1]!;
    return [
      {
        group: 'crossnode',
        name: 'Socket.IO 4 + Redis adapter (+ redis-server CPU)',
        system: 'sio',
        fanout: sio,
      },
      ...(withCent
        ? [
            {
              group: 'crossnode' as const,
              name: 'Centrifugo 6.9.1, 3 nodes, Redis engine, history 100 + recovery (+ redis-server CPU)',
              system: 'cent' as const,
              fanout: results[1]!,
            },
          ]
        : []),
      {
        group: 'crossnode',
        name: 'Switchboard, 3 nodes, durable chat.send (+ Hazelcast and FerretDB CPU)',
        system: 'sb',
        fanout: sb,
      },
    ];
  } finally {
    await stopAllServers(servers);
    await infra?.stop();
  }
}

/**
 * Stores `count` messages in 100 rooms of `dbName` through the store itself (so the indexes and the
 * room directory are the product's): the ingest is then measured on a collection of that size.
 */
export async function preload(url: string, dbName: string, count: number, log: Log): Promise<void> {
  const store = new MongoMessageStore({ url, dbName });
  await store.open();
  try {
    const rooms = 100;
    const wave = 10_000;
    const t0 = performance.now();
    for (let done = 0; done < count; done += wave) {
      const n = Math.min(wave, count - done);
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          store.append({
            room: `preload-${(done + i) % rooms}`,
            user: 'preload',
            clientMsgId: `preload-${done + i}`,
            text: `preloaded message ${done + i} of the ingest benchmark`,
          }),
        ),
      );
      if ((done / wave) % 10 === 0)
        log(`  preloaded ${done + n} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  } finally {
    await store.close();
  }
}

async function storedCount(url: string, dbName: string): Promise<number> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000, socketTimeoutMS: 300_000 });
  try {
    return await client.db(dbName).collection('messages').estimatedDocumentCount();
  } finally {
    await client.close();
  }
}

export async function runIngest(s: Settings, log: Log): Promise<Row[]> {
  const rows: Row[] = [];
  const db = await startFerretDb();
  // BENCH_INGEST_PRELOAD=N: measure on a collection already holding N messages (both modes share it).
  const preloaded = Number(process.env.BENCH_INGEST_PRELOAD ?? 0);
  if (!(Number.isInteger(preloaded) && preloaded >= 0)) throw new Error('BENCH_INGEST_PRELOAD: a count');
  const sharedDb = `ingest_${Date.now().toString(36)}`;
  try {
    if (preloaded > 0) {
      log(`durable ingest: preloading ${preloaded} messages into FerretDB`);
      await preload(db.url, sharedDb, preloaded, log);
    }
    for (const batching of [true, false]) {
      const dbName = preloaded > 0 ? sharedDb : `ingest_${batching}_${Date.now().toString(36)}`;
      const before = await storedCount(db.url, dbName);
      log(`durable ingest: FerretDB, STORE_BATCHING=${batching}, ${before} messages stored before`);
      const node = await startSwitchboard(`switchboard-ingest-${batching}`, {
        STORE: 'mongodb',
        MONGO_URL: db.url,
        MONGO_DB: dbName,
        STORE_BATCHING: String(batching),
      });
      const gen = LoadGen.start();
      try {
        const conns = 32;
        const r = await gen.call<Extract<Reply, { ok: 'ingest' }>>(
          {
            cmd: 'ingest',
            url: node.url,
            conns,
            window: 8,
            rooms: 8,
            ms: s.quick ? 3_000 : 10_000,
            tag: `b${batching}`,
          },
          120_000,
        );
        const rate = r.acked / (r.ms / 1000);
        const after = await storedCount(db.url, dbName);
        log(`  ${rate.toFixed(0)} acked msgs/s (${r.failed} failed); ${after} messages stored after`);
        rows.push({
          group: 'ingest',
          name: `Switchboard, batching ${batching ? 'on' : 'off'}`,
          system: 'sb',
          value: rate,
          note: `${conns} sockets × 8 in flight, 8 rooms; failed ${r.failed}; collection ${before} → ${after} messages; peers have no durable path`,
        });
      } finally {
        await gen.stop();
        await node.proc.stop();
      }
    }
  } finally {
    await db.stop();
  }
  return rows;
}

export async function runStorm(s: Settings, log: Log): Promise<Row[]> {
  const counts = (process.env.BENCH_STORM_CLIENTS ?? (s.quick ? '300' : '500,2000')).split(',').map(Number);
  const rows: Row[] = [];
  for (const count of counts) rows.push(await stormOf(count, log));
  return rows;
}

async function stormOf(count: number, log: Log): Promise<Row> {
  log(`reconnect storm: ${count} messages-lib clients, node killed`);
  const infra = await clusterInfra(STORM_LEASE_MS);
  const nodes: Server[] = [];
  const gens = [LoadGen.start(), LoadGen.start()];
  const pub = LoadGen.start();
  const room = 'storm';
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startSwitchboard(`switchboard-storm-${i}`, infra.env));
    const [victim, survivor] = nodes as [Server, Server];
    const joinStart = performance.now();
    const joined = await Promise.all(
      gens.map((g) =>
        g.call<Extract<Reply, { ok: 'storm' }>>(
          { cmd: 'storm', urls: [victim.url, survivor.url], count: count / 2, room },
          300_000,
        ),
      ),
    );
    const total = joined.reduce((n, j) => n + j.joined, 0);
    log(`  ${total} clients joined in ${((performance.now() - joinStart) / 1000).toFixed(1)} s`);
    if (total !== count) throw new Error(`storm: only ${total} of ${count} clients joined`);
    const publish = (step: number, ms: number) =>
      pub.call<Extract<Reply, { ok: 'publish' }>>(
        { cmd: 'publish', kind: 'sb', url: survivor.url, room, step, rate: 20, ms },
        120_000,
      );
    const before = await publish(1, 2_000);
    const killedAt = performance.now();
    victim.proc.kill('SIGKILL');
    // Messages stored while the victim's clients are away: the replay must bring them.
    const during = await publish(2, 1_000);
    const upTo = before.acked + during.acked;
    let status: Extract<Reply, { ok: 'stormStatus' }>[] = [];
    let seconds = NaN;
    const deadline = killedAt + 120_000;
    let lastLogged = -1;
    while (performance.now() < deadline) {
      status = await Promise.all(
        gens.map((g) => g.call<Extract<Reply, { ok: 'stormStatus' }>>({ cmd: 'stormStatus', upTo })),
      );
      const caughtUp = status.reduce((n, x) => n + x.caughtUp, 0);
      const second = Math.floor((performance.now() - killedAt) / 1000);
      if (second > lastLogged) {
        lastLogged = second;
        log(`  +${second}s: ${status.reduce((n, x) => n + x.open, 0)} open, ${caughtUp} caught up`);
      }
      if (caughtUp === count) {
        seconds = (performance.now() - killedAt) / 1000;
        break;
      }
      await sleep(100);
    }
    const caughtUp = status.reduce((n, x) => n + x.caughtUp, 0);
    const lost = status.reduce((n, x) => n + x.lost, 0);
    const duplicates = status.reduce((n, x) => n + x.duplicates, 0);
    log(`  ${seconds.toFixed(2)} s, lost ${lost}, duplicates ${duplicates}`);
    return {
      group: 'storm',
      name: `Switchboard, ${count.toLocaleString('en-US')} clients, 1 of 2 nodes SIGKILLed`,
      system: 'sb',
      value: seconds,
      note:
        (caughtUp === count
          ? `lost = ${lost}, duplicates = ${duplicates}`
          : `NOT DONE: ${caughtUp} of ${count} caught up after 120 s, ${lost} deliveries still missing, duplicates = ${duplicates}`) +
        ` (over ${upTo} messages, ${during.acked} stored during the outage; node lease ${STORM_LEASE_MS / 1000} s); Socket.IO has no replay to compare`,
    };
  } finally {
    await Promise.all([...gens, pub].map((g) => g.stop()));
    await stopAllServers(nodes);
    await infra.stop();
  }
}

export async function runFootprint(s: Settings, log: Log): Promise<Row[]> {
  const count = s.quick ? 2_000 : 10_000;
  const rows: Row[] = [];
  const systems: [ServerKind, string, () => Promise<Server>][] = [
    ['ws', 'raw ws', () => startRawWs()],
    ['sio', 'Socket.IO 4', () => startSocketIo()],
    // Each connection authenticated (its own JWT) and subscribed to one channel with history on;
    // it answers the server's pings (every 25 s), which this short row hardly sees.
    [
      'cent',
      'Centrifugo 6.9.1 (subscribed to a channel)',
      () => startCentrifugo('centrifugo-footprint', { log }),
    ],
    // Idle means idle: no pings, so the idle timeout is lifted for this row.
    [
      'sb',
      'Switchboard (registered on a room)',
      () => startSwitchboard('switchboard-footprint', { BRIDGE_IDLE_TIMEOUT_MS: '3600000' }),
    ],
  ];
  for (const [kind, name, start] of systems) {
    if (kind === 'cent' && !centWanted()) continue;
    log(`footprint: ${name}, ${count} idle connections`);
    const server = await start();
    const gens = [LoadGen.start(), LoadGen.start()];
    try {
      await sleep(1_000);
      const before = rssBytes(server.proc.pid);
      await Promise.all(
        gens.map((g) =>
          g.call(
            {
              cmd: 'connect',
              kind,
              urls: [server.url],
              count: count / 2,
              room: 'idle',
              ping: false,
              secret: server.secret,
            },
            300_000,
          ),
        ),
      );
      await sleep(3_000);
      const perConn = (rssBytes(server.proc.pid) - before) / count;
      log(`  ${perConn.toFixed(0)} bytes per connection`);
      rows.push({
        group: 'footprint',
        name,
        system: kind,
        value: perConn,
        note: `${count.toLocaleString('en-US')} connections, RSS after − before`,
      });
    } finally {
      await Promise.all(gens.map((g) => g.stop()));
      await server.proc.stop();
    }
  }
  return rows;
}
