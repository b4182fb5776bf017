// Long-lived streams (event streams, logs, exec, console) each hold a
// connection and some memory for as long as they last: each token, and the
// server as a whole, may hold only so many at once.
import { ApiError } from '../lib/errors.ts';

export interface StreamSlotLimits {
  perToken: number;
  total: number;
}

export class StreamSlots {
  private readonly byToken = new Map<string, number>();
  private total = 0;
  private readonly limits: StreamSlotLimits;

  constructor(limits: StreamSlotLimits) {
    this.limits = limits;
  }

  /** Takes a slot for `tokenId`, or refuses with a 429; the answer gives it back (once). */
  acquire(tokenId: string): () => void {
    const mine = this.byToken.get(tokenId) ?? 0;
    if (mine >= this.limits.perToken) {
      throw new ApiError('rate_limited', `this token has ${mine} streams open, the most it may; close one first`, {
        retryAfterSeconds: 5,
      });
    }
    if (this.total >= this.limits.total)
      throw new ApiError(
        'rate_limited',
        `the server has ${this.total} streams open, the most it serves; try again later`,
        { retryAfterSeconds: 5 },
      );
    this.byToken.set(tokenId, mine + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byToken.get(tokenId) ?? 1) - 1;
      if (left > 0) this.byToken.set(tokenId, left);
      else this.byToken.delete(tokenId);
    };
  }

  /** Open streams: of one token, or all. */
  count(tokenId?: string): number {
    return tokenId === undefined ? this.total : (this.byToken.get(tokenId) ?? 0);
  }
}
