import type { IMap, MultiMap } from 'hazelcast-client';
import type { HazelcastClient } from './hazelcast-connection.js';
import type { SharedMap, SharedMultiMap } from './types.js';

/** `client` is asked on every call: a map handed out before join() works once the node has joined. */
type ClientOf = () => HazelcastClient | undefined;

function joined(client: ClientOf): HazelcastClient {
  const c = client();
  if (!c) throw new Error('the cluster manager has not joined');
  return c;
}

/** The Hazelcast MultiMap `mapName`, as a cluster manager's `multiMap()`. */
export function sharedMultiMap(client: ClientOf, mapName: string): SharedMultiMap {
  const map = async (): Promise<MultiMap<string, string>> =>
    joined(client).getMultiMap<string, string>(mapName);
  return {
    get: async (key) => [...(await (await map()).get(key))],
    put: async (key, value) => void (await (await map()).put(key, value)),
    remove: async (key, value) => void (await (await map()).remove(key, value)),
    entries: async () => (await map()).entrySet(),
  };
}

/** The Hazelcast IMap `mapName`, as a cluster manager's `map()`. */
export function sharedMap(client: ClientOf, mapName: string): SharedMap {
  const map = async (): Promise<IMap<string, string>> => joined(client).getMap<string, string>(mapName);
  return {
    get: async (key) => (await (await map()).get(key)) ?? undefined,
    putIfAbsent: async (key, value) => (await (await map()).putIfAbsent(key, value)) ?? undefined,
    replaceIfSame: async (key, expected, value) => (await map()).replaceIfSame(key, expected, value),
    removeIfSame: async (key, expected) => (await (await map()).remove(key, expected)) === true,
    entries: async () => (await map()).entrySet(),
  };
}
