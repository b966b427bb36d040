import type * as grpc from '@grpc/grpc-js';
import type { TokenSource } from '../client.js';
import type { OutboxStorage } from '../outbox.js';

export interface GrpcChatClientOptions {
  /**
   * The server's gRPC endpoint (`GRPC_PORT`): `dns:///host:port` (every address the name resolves
   * to, balanced round robin), `host:port` (the same), a list of IP addresses
   * `['127.0.0.1:50051', '127.0.0.1:50052']`, grpc-js's `ipv4:a:p,b:p` / `ipv6:[a]:p,…`, or `unix:/path`.
   */
  target: string | string[];
  /** The user name (open mode); in token mode the server takes the user from the token. */
  user: string;
  /** A JWT, or a function returning one (called before every call). Sent as `authorization: Bearer`. */
  token?: TokenSource;
  /** Where unacked messages are kept; default in memory. */
  outbox?: OutboxStorage;
  /**
   * Reopening a room's Join stream: `random(0, min(maxMs, baseMs·2^attempt))`; after a drain
   * (UNAVAILABLE with the `reconnect` trailer) `random(0, drainJitterMs)`.
   */
  reconnect?: { baseMs?: number; maxMs?: number; drainJitterMs?: number };
  /** A Join stream that lived this long resets the backoff. Default 5 000. */
  stableMs?: number;
  /** Deadline of Send and History calls. Default 10 000. */
  requestTimeoutMs?: number;
  /** How long connect() waits for a ready channel per round (it keeps waiting). Default 10 000. */
  connectTimeoutMs?: number;
  /** Deadline of an Upload or Download. Default 120 000. */
  fileTimeoutMs?: number;
  /** Bytes per Upload chunk. Default 65 536. */
  uploadChunkBytes?: number;
  /** `limit` of history requests (≤ 500). Default 500. */
  historyPageSize?: number;
  /** Messages kept per room in `room.messages`. Default 1 000. */
  maxMessages?: number;
  /** Out-of-order messages buffered per room. Default 1 000. */
  maxBuffered?: number;
  /**
   * HTTP/2 keepalive ping interval, so a dead link is noticed. Default 10 000; keep it ≥ 5 000
   * (the server's minimum, or it answers GOAWAY too_many_pings).
   */
  keepaliveMs?: number;
  /** `round_robin` (default): calls spread over every resolved address; `pick_first`: one at a time. */
  loadBalancing?: 'round_robin' | 'pick_first';
  /** Default insecure (plaintext HTTP/2, as the server serves it; TLS belongs to the ingress). */
  credentials?: grpc.ChannelCredentials;
  /** Extra grpc-js channel options (they win over the client's). */
  channelOptions?: grpc.ChannelOptions;
  /** The directory holding `switchboard/chat/v1/chat.proto`; default the package's or the repository's `proto/`. */
  protoDir?: string;
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}
