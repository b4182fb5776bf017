// How long each phase of a node's step took, for the step's log line: an
// operator reads there where a deploy's minutes went (the BMC, the boots, the
// write) without a profiler.

/** Phase durations as log fields named `<phase>Ms`: each mark ends the phase since the one before. */
export class Phases {
  private last: number;
  private readonly now: () => number;
  readonly ms: Record<string, number> = {};

  constructor(now: () => number = Date.now) {
    this.now = now;
    this.last = now();
  }

  /** Ends the phase under way; a phase marked again adds up. */
  mark(phase: string): void {
    const t = this.now();
    const key = `${phase}Ms`;
    this.ms[key] = (this.ms[key] ?? 0) + t - this.last;
    this.last = t;
  }
}
