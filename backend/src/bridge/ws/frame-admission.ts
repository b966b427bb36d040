import type { SessionContext } from './session-context.js';

/**
 * What every frame of a session goes through first: counted, the idle timer pushed back, its size
 * and the session's frame rate checked. The idle timer, armed at open, fires `idle` when no frame
 * came for BRIDGE_IDLE_TIMEOUT_MS.
 */
export class FrameAdmission {
  private idleTimer: NodeJS.Timeout | undefined;
  private tokens: number;
  private lastRefill = Date.now();
  private lastRateError = 0;

  constructor(
    private readonly ctx: SessionContext,
    private readonly idle: () => void,
  ) {
    this.tokens = ctx.options.rateBurst;
  }

  admit(data: string): boolean {
    const { ctx } = this;
    if (ctx.closed) return false;
    ctx.options.observer?.frameIn();
    this.armIdle();
    if (Buffer.byteLength(data) > ctx.options.maxFrameBytes) {
      ctx.error('frame_too_large', `frames are limited to ${ctx.options.maxFrameBytes} bytes`);
      return false;
    }
    return this.takeToken();
  }

  armIdle(): void {
    // One timer per socket, pushed back by every frame: refresh() moves it without a new Timeout.
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(this.idle, this.ctx.options.idleTimeoutMs);
    this.idleTimer.unref();
  }

  stop(): void {
    clearTimeout(this.idleTimer);
  }

  private takeToken(): boolean {
    const { options } = this.ctx;
    const now = Date.now();
    this.tokens = Math.min(
      options.rateBurst,
      this.tokens + ((now - this.lastRefill) / 1000) * options.ratePerSec,
    );
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (now - this.lastRateError > 1_000) {
      this.lastRateError = now;
      this.ctx.error('rate_limited', `at most ${options.ratePerSec} frames per second`);
    }
    return false;
  }
}
