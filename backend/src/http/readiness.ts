/** Named checks that together say whether this node takes traffic (`GET /ready`). */
export class Readiness {
  private readonly checks = new Map<string, () => boolean>();
  private readonly degradations = new Map<string, () => boolean>();

  add(name: string, check: () => boolean): void {
    this.checks.set(name, check);
  }

  /** A condition reported on /ready (`degraded: [name]`) that does not make the node unready. */
  addDegraded(name: string, check: () => boolean): void {
    this.degradations.set(name, check);
  }

  /** The names of the degraded parts now. */
  degraded(): string[] {
    return [...this.degradations]
      .filter(([, check]) => {
        try {
          return check();
        } catch {
          return true;
        }
      })
      .map(([name]) => name);
  }

  report(): { ready: boolean; checks: Record<string, boolean> } {
    const checks: Record<string, boolean> = {};
    let ready = true;
    for (const [name, check] of this.checks) {
      let ok = false;
      try {
        ok = check();
      } catch {
        ok = false;
      }
      checks[name] = ok;
      ready &&= ok;
    }
    return { ready, checks };
  }
}
