// At most `limit` tasks at a time; the rest wait their turn, first come first
// served. A simulated fleet shares one between its agents' requests, so a burst
// of reports from a thousand hosts cannot open a thousand connections at once.
export class Gate {
  private readonly limit: number;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(limit: number) {
    if (!(limit >= 1)) throw new Error('a gate lets at least one task through');
    this.limit = limit;
  }

  get running(): number {
    return this.active;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    // A finishing task hands its place straight to the next waiter.
    else await new Promise<void>(resolve => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
