/**
 * Process signals: the first SIGTERM/SIGINT starts the graceful stop, bounded by `deadlineMs`
 * (then exit 1); a second signal exits at once (exit 1). A clean stop exits 0.
 */
export function exitOnSignals(opts: {
  stop: () => Promise<unknown>;
  deadlineMs: number;
  log: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  exit?: (code: number) => void;
}): void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      opts.log.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    opts.log.info({ signal, deadlineMs: opts.deadlineMs }, 'shutting down: draining');
    const deadline = setTimeout(() => {
      opts.log.error({}, `shutdown exceeded ${opts.deadlineMs} ms; exiting`);
      exit(1);
    }, opts.deadlineMs);
    deadline.unref();
    opts.stop().then(
      () => exit(0),
      (err: unknown) => {
        opts.log.error({ err: String(err) }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
