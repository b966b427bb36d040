/**
 * `@switchboard/protocol`: the one definition of what server and clients agree on. Pure data,
 * types and one pure algorithm both sides run (SeqOrder, a room's messages in seq order), no
 * Node-only imports: the browser client bundles it.
 */
export * from './addresses.js';
export * from './failures.js';
export * from './headers.js';
export * from './limits.js';
export type * from './messages.js';
export * from './patterns.js';
export * from './seq-order.js';
/** The gRPC messages and services, generated from proto/ (`npm run gen:proto`). */
export * as proto from './proto/index.js';
