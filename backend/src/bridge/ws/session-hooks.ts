import { type BridgeEvent, type BridgeEventType, type BridgeHookResult, hookVerdict } from '../core/hook.js';
import { type BridgeOptions, hookFor } from '../core/options.js';
import type { BridgeErrorBody } from '../core/refusals.js';

// How a session calls the bridge hook (BridgeConfig.hook), for the events it is called for.

/** Whether the hook is called for events of this type: when it is not, the event need not be built. */
export function hooked(options: BridgeOptions, type: BridgeEventType): boolean {
  return hookFor(options, type) !== undefined;
}

/** The hook's verdict on the event; a hook that throws refuses with `rejected`. */
export async function runHook(options: BridgeOptions, event: BridgeEvent): Promise<true | BridgeErrorBody> {
  const hook = hookFor(options, event.type);
  if (!hook) return true;
  let result: BridgeHookResult;
  try {
    result = await hook(event);
  } catch {
    return 'rejected';
  }
  return hookVerdict(result);
}

/** The hook's verdict, synchronously when the hook answers synchronously. */
export function runHookNow(
  options: BridgeOptions,
  event: BridgeEvent,
): true | BridgeErrorBody | Promise<true | BridgeErrorBody> {
  const hook = hookFor(options, event.type);
  if (!hook) return true;
  let result: BridgeHookResult | Promise<BridgeHookResult>;
  try {
    result = hook(event);
  } catch {
    return 'rejected';
  }
  if (typeof (result as Promise<BridgeHookResult>)?.then === 'function') {
    return Promise.resolve(result).then(hookVerdict, () => 'rejected' as const);
  }
  return hookVerdict(result as BridgeHookResult);
}

export async function hookAllows(options: BridgeOptions, event: BridgeEvent): Promise<boolean> {
  return (await runHook(options, event)) === true;
}

/** Hook events that cannot refuse anything (registered, idle): nobody waits for the verdict. */
export function notifyHook(options: BridgeOptions, event: BridgeEvent): void {
  void runHook(options, event).catch((err: unknown) =>
    options.log.warn({ err: String(err), event: event.type }, 'bridge: hook notification failed'),
  );
}
