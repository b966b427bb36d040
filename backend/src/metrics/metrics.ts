import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BusObserver } from '../eventbus/event-bus.js';
import type { ChatObserver } from '../chat/chat-service.js';
import type { BridgeObserver } from '../bridge/core/options.js';
import type { MessageStore } from '../store/types.js';
import { registerEventLoopDelay } from './event-loop-delay.js';
import { observeStore, type StoreObserver } from './observed-store.js';

/** What the state gauges read when Prometheus scrapes (no polling in between). */
export interface MetricsSources {
  clusterConnected(): boolean;
  clusterNodes(): number;
  storeConnected(): boolean;
  /** Load shedding and recent tails of the store (store/node-store.ts). */
  storeLayers?(): {
    degraded: boolean;
    inFlight: number;
    shed: number;
    tail: {
      rooms: number;
      messages: number;
      bytes: number;
      loads: number;
      handedOver: number;
      drops: Record<string, number>;
    };
  };
  /** Open bridge sockets (raw WebSocket and SockJS). */
  wsConnections(): number;
}

// Chat and bus latencies are sub-millisecond locally and seconds when a store stalls.
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DRAIN_BUCKETS = [0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60];
/** Sampling period of the event-loop lag metrics (`nodejs_eventloop_lag_*`); excluded from what they read. */
export const LAG_SAMPLE_MS = 100;
/**
 * prom-client's own lag histogram is replaced (its figures include the sampling period) but cannot
 * be switched off: a coarse period keeps its timer from waking the node.
 */
const PROM_CLIENT_LAG_SAMPLE_MS = 60_000;

/**
 * Every Prometheus metric of one node, in a registry of its own (so several nodes in one test
 * process do not share counters). The bus, store, chat and bridges see only narrow observer
 * interfaces; prom-client stays inside this folder.
 */
export class Metrics {
  readonly registry = new Registry();

  private readonly framesIn: Counter;
  private readonly framesOut: Counter;
  private readonly joins: Counter<'kind'>;
  private readonly replayed: Counter;
  private readonly messagesIn: Counter<'result'>;
  private readonly published: Counter;
  private readonly busOut: Counter<'kind'>;
  private readonly busOutBytes: Counter;
  private readonly busIn: Counter<'kind'>;
  private readonly busInBytes: Counter;
  private readonly busRequest: Histogram<'outcome'>;
  private readonly storeOp: Histogram<'op' | 'outcome'>;
  private readonly databaseOp: Histogram<'op' | 'outcome'>;
  private readonly reconnects: Counter<'transport'>;
  private readonly drain: Histogram;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // The event-loop lag histogram samples with a timer; prom-client's default 10 ms wakes an idle
    // node 100 times a second (about 1 % of a core here), 100 ms still catches every stall that long.
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({
        register: this.registry,
        eventLoopMonitoringPrecision: PROM_CLIENT_LAG_SAMPLE_MS,
      });
      registerEventLoopDelay(this.registry, LAG_SAMPLE_MS);
    }
    this.framesIn = new Counter({
      name: 'switchboard_bridge_frames_in_total',
      help: 'Frames received from bridge clients (WebSocket and SockJS)',
      registers,
    });
    this.framesOut = new Counter({
      name: 'switchboard_bridge_frames_out_total',
      help: 'Frames written to bridge clients (WebSocket and SockJS)',
      registers,
    });
    this.joins = new Counter({
      name: 'switchboard_chat_joins_total',
      help: 'chat.join requests answered; kind=resume when the client sent since (a reconnect)',
      labelNames: ['kind'],
      registers,
    });
    this.replayed = new Counter({
      name: 'switchboard_chat_replayed_messages_total',
      help: 'Messages returned by resuming joins (what clients missed while away)',
      registers,
    });
    this.messagesIn = new Counter({
      name: 'switchboard_chat_messages_in_total',
      help: 'chat.send requests acked; result=duplicate for an idempotent retry',
      labelNames: ['result'],
      registers,
    });
    this.published = new Counter({
      name: 'switchboard_chat_messages_out_total',
      help: 'Stored messages published to their room (fan-out to members follows on the bus)',
      registers,
    });
    this.busOut = new Counter({
      name: 'switchboard_bus_messages_out_total',
      help: 'Bus messages handed to the node transport for another node',
      labelNames: ['kind'],
      registers,
    });
    this.busOutBytes = new Counter({
      name: 'switchboard_bus_bytes_out_total',
      help: 'Body bytes sent to other nodes',
      registers,
    });
    this.busIn = new Counter({
      name: 'switchboard_bus_messages_in_total',
      help: 'Bus messages received from other nodes',
      labelNames: ['kind'],
      registers,
    });
    this.busInBytes = new Counter({
      name: 'switchboard_bus_bytes_in_total',
      help: 'Body bytes received from other nodes',
      registers,
    });
    this.busRequest = new Histogram({
      name: 'switchboard_bus_request_duration_seconds',
      help: 'Bus request to reply (or failure) on the requesting node',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.storeOp = new Histogram({
      name: 'switchboard_store_operation_duration_seconds',
      help: 'Message store calls',
      labelNames: ['op', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // The same calls, counted again where they reach the database: past the recent tail (which
    // answers most reads from memory) and the load shedder (which refuses some fast). The gap
    // between the two says what the tail saves the database.
    this.databaseOp = new Histogram({
      name: 'switchboard_store_database_duration_seconds',
      help: 'Message store calls that reached the database (past the recent tail and load shedding)',
      labelNames: ['op', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.reconnects = new Counter({
      name: 'switchboard_reconnect_requests_total',
      help: 'Clients asked to reconnect elsewhere (graceful drain)',
      labelNames: ['transport'],
      registers,
    });
    this.drain = new Histogram({
      name: 'switchboard_drain_duration_seconds',
      help: 'SIGTERM to the end of the graceful drain',
      buckets: DRAIN_BUCKETS,
      registers,
    });
  }

  /** State gauges, read at scrape time. Call once, from the composition root. */
  watch(sources: MetricsSources): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge('switchboard_cluster_connected', '1 while the cluster manager (Hazelcast) is connected', () =>
      sources.clusterConnected() ? 1 : 0,
    );
    gauge('switchboard_cluster_nodes', 'Backend nodes this node sees in the cluster', () =>
      sources.clusterNodes(),
    );
    gauge('switchboard_store_connected', '1 while the message store takes writes', () =>
      sources.storeConnected() ? 1 : 0,
    );
    const layers = sources.storeLayers;
    if (layers) {
      gauge(
        'switchboard_store_degraded',
        '1 while the store is slow or down and sends are refused fast',
        () => (layers().degraded ? 1 : 0),
      );
      gauge(
        'switchboard_store_in_flight',
        'Store calls out now (bound STORE_MAX_IN_FLIGHT)',
        () => layers().inFlight,
      );
      gauge('switchboard_store_shed', 'Store calls refused as busy since start', () => layers().shed);
      gauge(
        'switchboard_store_tail_rooms',
        'Rooms whose recent tail is in memory',
        () => layers().tail.rooms,
      );
      gauge('switchboard_store_tail_messages', 'Messages in the recent tails', () => layers().tail.messages);
      // Counted by the tail itself; what grew since the last scrape goes into counters.
      const grown = (name: string, help: string, read: () => number): void => {
        let seen = 0;
        new Counter({
          name,
          help,
          registers,
          collect() {
            const now = read();
            this.inc(now - seen);
            seen = now;
          },
        });
      };
      grown(
        'switchboard_store_tail_loads_total',
        'Recent tails read from the store (a room taken over, or its tail dropped before)',
        () => layers().tail.loads,
      );
      grown(
        'switchboard_store_tail_handovers_total',
        'Recent tails taken from a draining owner instead of read from the store',
        () => layers().tail.handedOver,
      );
      const dropsSeen = new Map<string, number>();
      new Counter({
        name: 'switchboard_store_tail_drops_total',
        help: 'Recent tails dropped from memory, by reason (moved, not_owner, other_writer, evicted, forgotten)',
        labelNames: ['reason'],
        registers,
        collect() {
          for (const [reason, now] of Object.entries(layers().tail.drops)) {
            this.inc({ reason }, now - (dropsSeen.get(reason) ?? 0));
            dropsSeen.set(reason, now);
          }
        },
      });
      gauge(
        'switchboard_store_tail_bytes',
        'Estimated bytes of the recent tails (bound STORE_TAIL_MB)',
        () => layers().tail.bytes,
      );
    }
    gauge('switchboard_bridge_connections', 'Open bridge sockets (WebSocket and SockJS)', () =>
      sources.wsConnections(),
    );
  }

  readonly bus: BusObserver = {
    outbound: (kind, bytes) => {
      this.busOut.inc({ kind });
      this.busOutBytes.inc(bytes);
    },
    inbound: (kind, bytes) => {
      this.busIn.inc({ kind });
      this.busInBytes.inc(bytes);
    },
    requestSettled: (seconds, outcome) => this.busRequest.observe({ outcome }, seconds),
  };

  readonly chat: ChatObserver = {
    joined: (resumed, replayed) => {
      this.joins.inc({ kind: resumed ? 'resume' : 'first' });
      if (replayed > 0) this.replayed.inc(replayed);
    },
    messageIn: (duplicate) => this.messagesIn.inc({ result: duplicate ? 'duplicate' : 'stored' }),
    published: () => this.published.inc(),
  };

  readonly bridge: BridgeObserver = {
    frameIn: () => this.framesIn.inc(),
    framesOut: (count) => this.framesOut.inc(count),
  };

  /** The store, with every call timed. */
  observeStore(store: MessageStore): MessageStore {
    return observeStore(store, timedInto(this.storeOp));
  }

  /** The database store under the node's layers, with every call that reaches it timed. */
  observeDatabase(store: MessageStore): MessageStore {
    return observeStore(store, timedInto(this.databaseOp));
  }

  /** Called by the graceful drain for every client it asks to move. */
  reconnectRequested(transport: 'ws' | 'grpc', n = 1): void {
    if (n > 0) this.reconnects.inc({ transport }, n);
  }

  /** Called by the graceful drain once it is done. */
  drainFinished(seconds: number): void {
    this.drain.observe(seconds);
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A store observer that records each call's duration, by operation and outcome. */
function timedInto(histogram: Histogram<'op' | 'outcome'>): StoreObserver {
  return { operation: (op, seconds, ok) => histogram.observe({ op, outcome: ok ? 'ok' : 'error' }, seconds) };
}
