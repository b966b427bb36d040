export { drain, type DrainObserver, type DrainPlan, type DrainReport, type Reconnectable } from './drain.js';
export { prestopRoute, type PrestopOptions } from './prestop.js';
export { exitOnSignals } from './signals.js';
export { spreadOver, type Spread } from './spread.js';
export { STORE_BACK_REASON, StoreRecoveryNotice, type RetryHintable } from './store-recovery.js';
