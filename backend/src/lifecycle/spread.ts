/**
 * Calls `each` once for every item, in random order, spread evenly over `windowMs`, so that the
 * clients of a draining node arrive at the survivors as a trickle rather than a stampede. One
 * timer ticks through the schedule (thousands of sessions must not mean thousands of timers).
 * Resolves when every item was handled, or at once when `abort()` was called (then the rest are
 * handled immediately).
 */
export interface Spread {
  done: Promise<void>;
  /** Handles every remaining item now (the deadline is near). */
  hurry(): void;
}

const TICK_MS = 10;

export function spreadOver<T>(
  items: readonly T[],
  windowMs: number,
  each: (item: T) => void,
  random: () => number = Math.random,
): Spread {
  const order = [...items];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const start = Date.now();
  const step = order.length > 0 ? windowMs / order.length : 0;
  let next = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  let timer: NodeJS.Timeout | undefined;

  const run = (all: boolean): void => {
    const due = all ? order.length : Math.min(order.length, Math.floor((Date.now() - start) / step) + 1);
    while (next < due) {
      const item = order[next++]!;
      try {
        each(item);
      } catch {
        // one failing session must not stop the others from being asked
      }
    }
    if (next >= order.length) {
      if (timer) clearInterval(timer);
      resolve();
    }
  };
  if (step === 0 || windowMs === 0) run(true);
  else {
    run(false);
    if (next < order.length) timer = setInterval(() => run(false), TICK_MS);
  }
  return { done, hurry: () => run(true) };
}
