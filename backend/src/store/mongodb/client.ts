/**
 * The store's MongoClient: its settings (bounds from the options), the command observer, the
 * topology's writability, and the log of slow commands.
 */
import { MongoClient } from 'mongodb';
import type { TopologyDescription } from 'mongodb';
import type { MongoMessageStoreOptions, ResolvedOptions, StoreLogger } from './options.js';

const WRITABLE_SERVER_TYPES = new Set(['Standalone', 'RSPrimary', 'Mongos', 'LoadBalancer']);

/** Whether the topology has a server that takes writes. */
export function hasWritableServer(desc: TopologyDescription): boolean {
  return [...desc.servers.values()].some((s) => WRITABLE_SERVER_TYPES.has(s.type));
}

/** A client, not yet connected, with its listeners on. */
export function createClient(
  opts: ResolvedOptions,
  commandObserver: MongoMessageStoreOptions['commandObserver'],
  log: StoreLogger,
  onTopology: (desc: TopologyDescription) => void,
): MongoClient {
  const client = new MongoClient(opts.url, {
    appName: 'switchboard',
    serverSelectionTimeoutMS: opts.serverSelectionTimeoutMs,
    connectTimeoutMS: Math.min(opts.serverSelectionTimeoutMs, 10_000),
    heartbeatFrequencyMS: opts.heartbeatFrequencyMs,
    socketTimeoutMS: opts.writeTimeoutMs + 5000,
    writeConcern: { wtimeoutMS: opts.writeTimeoutMs, ...opts.writeConcern },
    ignoreUndefined: true,
    monitorCommands: opts.slowCommandMs > 0 || commandObserver !== undefined,
  });
  const observer = commandObserver;
  if (observer) client.on('commandStarted', (ev) => observer(ev.commandName, ev.command));
  client.on('topologyDescriptionChanged', (ev) => onTopology(ev.newDescription));
  if (opts.slowCommandMs > 0) logSlowCommands(client, opts.slowCommandMs, log);
  return client;
}

/**
 * With `slowCommandMs` set: each slow command (at most 10 lines/s), and every 10 s a summary of
 * all commands by name and filter keys (count, total and max ms), to see what loads the database.
 */
function logSlowCommands(client: MongoClient, slowCommandMs: number, log: StoreLogger): void {
  const started = new Map<number, string>();
  let stats = new Map<string, { count: number; ms: number; max: number }>();
  let second = 0;
  let lines = 0;
  client.on('commandStarted', (ev) => {
    const cmd = ev.command as Record<string, unknown>;
    const filter = (cmd.filter ?? cmd.q ?? {}) as Record<string, unknown>;
    started.set(ev.requestId, `${ev.commandName}(${Object.keys(filter).join(',')})`);
  });
  const done = (ev: { requestId: number; duration: number }, failed: boolean): void => {
    const shape = started.get(ev.requestId);
    started.delete(ev.requestId);
    if (shape === undefined) return;
    const st = stats.get(shape) ?? { count: 0, ms: 0, max: 0 };
    st.count += 1;
    st.ms += ev.duration;
    st.max = Math.max(st.max, ev.duration);
    stats.set(shape, st);
    if (ev.duration < slowCommandMs) return;
    const now = Math.floor(Date.now() / 1000);
    if (now !== second) [second, lines] = [now, 0];
    if (++lines > 10) return;
    log.warn({ command: shape, ms: Math.round(ev.duration), failed }, 'slow database command');
  };
  client.on('commandSucceeded', (ev) => done(ev, false));
  client.on('commandFailed', (ev) => done(ev, true));
  const timer = setInterval(() => {
    if (stats.size === 0) return;
    const summary = Object.fromEntries(
      [...stats].map(([k, v]) => [k, { n: v.count, ms: Math.round(v.ms), max: Math.round(v.max) }]),
    );
    stats = new Map();
    log.info({ commands: summary, inFlight: started.size }, 'database commands in the last 10 s');
  }, 10_000);
  timer.unref();
  client.once('close', () => clearInterval(timer));
}
