/**
 * `@switchboard/protocol`: the one definition of what server and clients agree on. Pure data and
 * types, no Node-only imports: the browser client bundles it.
 */
export * from './addresses.js';
export * from './failures.js';
export * from './headers.js';
export * from './limits.js';
export type * from './messages.js';
export * from './patterns.js';
/** The gRPC messages and services, generated from proto/ (`npm run gen:proto`). */
export * as proto from './proto/index.js';
