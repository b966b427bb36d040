/** Named checks that together say whether this node takes traffic (`GET /ready`). */
export class Readiness {
  private readonly checks = new Map<string, () => boolean>();

  add(name: string, check: () => boolean): void {
    this.checks.set(name, check);
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
