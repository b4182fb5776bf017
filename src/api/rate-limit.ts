// Token buckets, one per key (a client address, a token): each holds up to
// `burst` and refills at `perSecond`; a request takes one. An empty bucket
// answers how long until the next one is there. Buckets that are full again
// are forgotten, so memory stays bounded by the keys that are busy now.
import { ApiError } from '../lib/errors.ts';

export interface BucketLimits {
  perSecond: number;
  burst: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { level: number; at: number }>();
  private readonly o: BucketLimits;
  private lastSweep = 0;

  constructor(o: BucketLimits) {
    this.o = o;
  }

  /** Takes one from `key`'s bucket: 0 when it had one, else the seconds until it will. */
  take(key: string, now = Date.now()): number {
    this.sweep(now);
    const b = this.buckets.get(key) ?? { level: this.o.burst, at: now };
    b.level = this.levelOf(b, now);
    b.at = now;
    if (b.level < 1) {
      this.buckets.set(key, b);
      return this.waitFor(b.level);
    }
    b.level -= 1;
    this.buckets.set(key, b);
    return 0;
  }

  /** Whether `key` has nothing left now (without taking). */
  empty(key: string, now = Date.now()): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const level = this.levelOf(b, now);
    return level < 1 ? this.waitFor(level) : 0;
  }

  /** A bucket's level now: what it held, refilled since, at most full. */
  private levelOf(b: { level: number; at: number }, now: number): number {
    return Math.min(this.o.burst, b.level + ((now - b.at) / 1000) * this.o.perSecond);
  }

  /** Whole seconds until a bucket at `level` holds one again. */
  private waitFor(level: number): number {
    return Math.max(1, Math.ceil((1 - level) / this.o.perSecond));
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 10_000 && this.buckets.size < 100_000) return;
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (this.levelOf(b, now) >= this.o.burst) this.buckets.delete(k);
  }
}

export const rateLimited = (message: string, retryAfterSeconds: number): ApiError =>
  new ApiError('rate_limited', message, { retryAfterSeconds });
