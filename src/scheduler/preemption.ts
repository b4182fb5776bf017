// Preemption: which instances to stop so that one that fits on no host can
// be placed. Pure: the snapshot and the candidates in, a host and its victims
// out. The rules:
// - Only instances of strictly lower priority than the preemptor are
//   candidates (the caller passes the ones that hold capacity and may be
//   stopped), and only on a host the preemptor could take were they gone:
//   state, driver, pool, constraints, resources and group rules are all
//   checked with the victims' resources free and their group memberships
//   forgotten. A host of another project's dedicated pool is never feasible,
//   so its instances are never victims.
// - Victims are only ever taken from the one host the preemptor goes to.
//   A group rule that other hosts' members break (anti-affinity at the rack
//   level, say) is not cured by preempting there.
// - On each host, candidates are added lowest priority first (among equal
//   priorities, the largest first, then the newest), until the host can take
//   the preemptor; then every victim not needed after all is given back,
//   highest priority first. The set is minimal: no victim can be spared.
// - Among hosts, the one whose most important victim has the lowest priority
//   wins; then the fewest victims; then the lowest sum of their priorities;
//   then the preemptor's usual score; then the host id, so the choice is the
//   same for the same input.
// - A whole-host request (a bare-metal node) preempts nothing.
import type { Held, Request, Scheduler } from './scheduler.ts';

/** An instance that may be stopped to make room. */
export interface Candidate extends Held {
  id: string;
  hostId: string;
  priority: number;
  /** creation time: among equal priorities and sizes, the newest goes first */
  createdAt: string;
}

export interface Preemption {
  hostId: string;
  /** the victims' ids, lowest priority first */
  victims: string[];
}

/** Lowest priority first; then the largest (memory, then vCPUs); then the newest; then by id. */
function victimOrder(a: Candidate, b: Candidate): number {
  return (
    a.priority - b.priority ||
    b.memoryMib - a.memoryMib ||
    b.vcpus - a.vcpus ||
    (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/** The fewest victims on one host that let it take the request, or null when none will. */
export function victimsOn(
  sched: Scheduler,
  hostId: string,
  r: Request,
  candidates: readonly Candidate[],
): Candidate[] | null {
  const ordered = [...candidates].sort(victimOrder);
  const chosen: Candidate[] = [];
  let fits = false;
  for (const c of ordered) {
    chosen.push(c);
    if (sched.rejectWithout(hostId, r, chosen) === null) {
      fits = true;
      break;
    }
  }
  if (!fits) return null;
  // Give back, most important first, every victim the host can do without.
  for (let i = chosen.length - 2; i >= 0; i--) {
    const without = chosen.filter((_, j) => j !== i);
    if (sched.rejectWithout(hostId, r, without) === null) chosen.splice(i, 1);
  }
  return chosen;
}

interface Option {
  hostId: string;
  victims: Candidate[];
  top: number;
  sum: number;
  score: number;
}

const better = (a: Option, b: Option): boolean =>
  a.top !== b.top
    ? a.top < b.top
    : a.victims.length !== b.victims.length
      ? a.victims.length < b.victims.length
      : a.sum !== b.sum
        ? a.sum < b.sum
        : a.score !== b.score
          ? a.score > b.score
          : a.hostId < b.hostId;

/**
 * Where a request of `priority` that fits nowhere could go by stopping
 * instances of lower priority, and which: null when no host would do.
 */
export function choosePreemption(
  sched: Scheduler,
  r: Request,
  priority: number,
  candidates: readonly Candidate[],
): Preemption | null {
  if (r.whole) return null;
  const byHost = new Map<string, Candidate[]>();
  for (const c of candidates) {
    if (c.priority >= priority) continue;
    const list = byHost.get(c.hostId) ?? [];
    byHost.set(c.hostId, list);
    list.push(c);
  }
  let best: Option | undefined;
  for (const [hostId, list] of byHost) {
    const victims = victimsOn(sched, hostId, r, list);
    if (!victims) continue;
    const option: Option = {
      hostId,
      victims,
      top: Math.max(...victims.map(v => v.priority)),
      sum: victims.reduce((s, v) => s + v.priority, 0),
      score: sched.scoreOn(hostId, r),
    };
    if (!best || better(option, best)) best = option;
  }
  return best ? { hostId: best.hostId, victims: best.victims.map(v => v.id) } : null;
}
