// The order in which instances waiting for a host are placed: higher priority
// first, then the older first (creation time, then id, which sorts by creation
// too), so equal priorities are first come, first served. Pure.

export interface Queued {
  priority: number;
  createdAt: string;
  id: string;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Negative when `a` is placed before `b`. */
export function queueOrder(a: Queued, b: Queued): number {
  return b.priority - a.priority || cmp(a.createdAt, b.createdAt) || cmp(a.id, b.id);
}

/** The items in placement order (a new array). */
export function inQueueOrder<T>(items: readonly T[], key: (item: T) => Queued): T[] {
  return items
    .map(item => ({ item, k: key(item) }))
    .sort((a, b) => queueOrder(a.k, b.k))
    .map(x => x.item);
}
