// The scheduler for every kind: a snapshot of the cluster in, one placement
// (or a counted explanation) out, and the snapshot updated by each commit so a
// batch of placements never promises the same capacity or breaks a group rule
// twice. Pure: no I/O, so it is tested exhaustively and benchmarked alone.
//
// Feasibility: state, driver, pool, label constraints, free resources, hard
// group rules (affinity / anti-affinity at any level) and spread (max skew).
// Scoring among the feasible: bin-pack or spread, soft group rules.
// Cost: feasible candidates are looked for from a rotating start and the
// search stops after `candidates` of them (Nomad's trick), so the cost per
// placement grows with the candidates looked at, not with the cluster; a
// refusal scans every host, so its explanation counts every one.
import { constraintHolds, explain, type ConstraintSpec } from './constraints.ts';
import type { Level } from '../model/topology.ts';
import { domainOf, physicalHosts, type TopologyHost } from './topology.ts';

export interface SchedHost extends TopologyHost {
  state: string;
  drivers: readonly string[];
  pool: string | null;
  labels: Readonly<Record<string, string>>;
  allocatable: { vcpus: number; memoryMib: number; diskGib: number };
  free: { vcpus: number; memoryMib: number; diskGib: number };
}

export interface GroupRule {
  id: string;
  policy: 'affinity' | 'anti-affinity';
  strength: 'hard' | 'soft';
  level: Level;
}

/** Members of `groupId` spread over `level`: no domain more than `maxSkew` above the emptiest. */
export interface SpreadRule {
  groupId: string;
  level: Level;
  maxSkew: number;
}

export interface Request {
  projectId: string;
  kind: string;
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  constraints: readonly ConstraintSpec[];
  groups?: readonly GroupRule[];
  spread?: SpreadRule | undefined;
  /** binpack (default): fill hosts up; spread: prefer the emptiest. */
  strategy?: 'binpack' | 'spread';
  /** The instance takes a whole host (a bare-metal node): only an empty one will do, and it is then full. */
  whole?: boolean;
}

export interface Scored {
  hostId: string;
  score: number;
}

export type Outcome = { ok: true; hostId: string; score: number } | { ok: false; reason: string };

/** What an instance already placed holds on its host: its resources and the groups it counts in. */
export interface Held {
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  groups: readonly string[];
}

interface Node extends SchedHost {
  domains: Map<Level, string>;
}

/** Another project's dedicated host: explanations neither count nor mention it. */
const hiddenFrom = (n: SchedHost, r: Request): boolean => n.pool !== null && n.pool !== r.projectId;

export class Scheduler {
  private readonly nodes: Node[];
  private readonly byId = new Map<string, Node>();
  private readonly dedicated: ReadonlySet<string>;
  /** group id -> level -> domain -> members */
  private readonly members = new Map<string, Map<Level, Map<string, number>>>();
  /** level -> every domain at that level */
  private readonly domainsAt = new Map<Level, Set<string>>();
  private cursor = 0;
  readonly candidates: number;

  constructor(hosts: readonly SchedHost[], dedicatedPools: ReadonlySet<string>, opts: { candidates?: number } = {}) {
    const topo = new Map<string, TopologyHost>(hosts.map(h => [h.id, h]));
    const physical = physicalHosts(hosts);
    this.nodes = hosts.map(h => {
      const domains = new Map<Level, string>();
      for (const level of ['host', 'physical-host', 'rack', 'zone', 'region'] as const) {
        const d = domainOf(h, level, physical, topo);
        domains.set(level, d);
        const set = this.domainsAt.get(level) ?? new Set<string>();
        this.domainsAt.set(level, set);
        set.add(d);
      }
      return { ...h, free: { ...h.free }, domains };
    });
    for (const n of this.nodes) this.byId.set(n.id, n);
    this.dedicated = dedicatedPools;
    this.candidates = opts.candidates ?? Math.max(8, Math.ceil(Math.log2(Math.max(2, hosts.length)) * 2));
  }

  /** Records an existing member of a group on a host (from the current placements). */
  addMember(groupId: string, hostId: string): void {
    const n = this.byId.get(hostId);
    if (!n) return;
    const byLevel = this.members.get(groupId) ?? new Map();
    this.members.set(groupId, byLevel);
    for (const [level, d] of n.domains) {
      const m = byLevel.get(level) ?? new Map<string, number>();
      byLevel.set(level, m);
      m.set(d, (m.get(d) ?? 0) + 1);
    }
  }

  /** Forgets one member of a group on a node, the inverse of `addMember`; false when none was there. */
  private removeMember(groupId: string, n: Node): boolean {
    const byLevel = this.members.get(groupId);
    if (!byLevel || (byLevel.get('host')?.get(n.domains.get('host')!) ?? 0) === 0) return false;
    for (const [level, d] of n.domains) {
      const m = byLevel.get(level);
      const c = m?.get(d) ?? 0;
      if (c <= 1) m?.delete(d);
      else m!.set(d, c - 1);
    }
    // A group with no member left has none anywhere: affinity then holds on any host.
    if ((byLevel.get('host')?.size ?? 0) === 0) this.members.delete(groupId);
    return true;
  }

  private count(groupId: string, level: Level, domain: string): number {
    return this.members.get(groupId)?.get(level)?.get(domain) ?? 0;
  }

  private hasMembers(groupId: string): boolean {
    return this.members.has(groupId);
  }

  /** The fewest members of a group in any domain of a level (0 while some domain has none). */
  private minCount(groupId: string, level: Level): number {
    const m = this.members.get(groupId)?.get(level);
    const all = this.domainsAt.get(level);
    if (!m || !all || m.size < all.size) return 0;
    let min = Infinity;
    for (const c of m.values()) if (c < min) min = c;
    return min;
  }

  /** Why a host cannot take the request, or null. */
  reject(n: Node, r: Request): string | null {
    if (n.state !== 'ready') return n.state;
    if (!n.drivers.includes(r.kind)) return `lack driver ${r.kind}`;
    if (n.pool !== null && n.pool !== r.projectId) return 'dedicated to another project';
    if (n.pool === null && this.dedicated.has(r.projectId)) return 'shared pool (project has dedicated hosts)';
    for (const c of r.constraints)
      if (!constraintHolds(n, c)) return `constraint ${c.key} ${c.op}${c.value ? ` ${c.value}` : ''}`;
    if (
      r.whole &&
      (n.free.vcpus < n.allocatable.vcpus ||
        n.free.memoryMib < n.allocatable.memoryMib ||
        n.free.diskGib < n.allocatable.diskGib)
    )
      return 'in use';
    if (n.free.vcpus < r.vcpus) return 'lack vcpus';
    if (n.free.memoryMib < r.memoryMib) return 'lack memory';
    if (n.free.diskGib < r.diskGib) return 'lack disk';
    for (const g of r.groups ?? []) {
      if (g.strength !== 'hard') continue;
      const here = this.count(g.id, g.level, n.domains.get(g.level)!);
      if (g.policy === 'anti-affinity' && here > 0) return `anti-affinity ${g.level}`;
      if (g.policy === 'affinity' && here === 0 && this.hasMembers(g.id)) return `affinity ${g.level}`;
    }
    const s = r.spread;
    if (s) {
      const here = this.count(s.groupId, s.level, n.domains.get(s.level)!);
      if (here + 1 - this.minCount(s.groupId, s.level) > s.maxSkew) return `spread ${s.level} (max skew ${s.maxSkew})`;
    }
    return null;
  }

  /** Higher is better. Bin-pack: least memory left; spread: most. Soft rules shift it. */
  score(n: Node, r: Request): number {
    const left = (n.free.memoryMib - r.memoryMib) / Math.max(1, n.allocatable.memoryMib);
    let s = r.strategy === 'spread' ? left : 1 - left;
    for (const g of r.groups ?? []) {
      if (g.strength !== 'soft') continue;
      const here = this.count(g.id, g.level, n.domains.get(g.level)!);
      if (g.policy === 'anti-affinity') s -= here;
      else if (here > 0) s += 1;
    }
    return s;
  }

  /** The best host for the request, without committing it. */
  place(r: Request): Outcome {
    const total = this.nodes.length;
    let best: Node | undefined;
    let bestScore = -Infinity;
    let found = 0;
    const reasons = new Map<string, number>();
    const start = this.cursor;
    for (let i = 0; i < total; i++) {
      const n = this.nodes[(start + i) % total]!;
      const why = this.reject(n, r);
      if (why) {
        if (!hiddenFrom(n, r)) reasons.set(why, (reasons.get(why) ?? 0) + 1);
        continue;
      }
      const sc = this.score(n, r);
      if (sc > bestScore) {
        best = n;
        bestScore = sc;
      }
      if (++found >= this.candidates) break;
    }
    // The next search starts further on, so hosts share the load of being looked at.
    this.cursor = total === 0 ? 0 : (start + 1) % total;
    if (best) return { ok: true, hostId: best.id, score: bestScore };
    return { ok: false, reason: explain(this.visibleTo(r), reasons) };
  }

  /** Takes the request's resources on the host and counts it in its groups. */
  commit(hostId: string, r: Request): void {
    const n = this.byId.get(hostId);
    if (!n) throw new Error(`unknown host ${hostId}`);
    const take = r.whole ? n.allocatable : r;
    n.free.vcpus -= take.vcpus;
    n.free.memoryMib -= take.memoryMib;
    n.free.diskGib -= take.diskGib;
    const ids = new Set([...(r.groups ?? []).map(g => g.id), ...(r.spread ? [r.spread.groupId] : [])]);
    for (const id of ids) this.addMember(id, hostId);
  }

  /** Every feasible host's score, best first, and why the others cannot (for `strata instance explain`). */
  rank(r: Request, top = 10): { candidates: Scored[]; refusals: string } {
    const out: Scored[] = [];
    const reasons = new Map<string, number>();
    for (const n of this.nodes) {
      const why = this.reject(n, r);
      if (!why) out.push({ hostId: n.id, score: this.score(n, r) });
      else if (!hiddenFrom(n, r)) reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
    return {
      candidates: out.sort((a, b) => b.score - a.score).slice(0, top),
      refusals: explain(this.visibleTo(r), reasons),
    };
  }

  /** Hosts the request's project may know of: all but those dedicated to other projects. */
  private visibleTo(r: Request): number {
    let n = 0;
    for (const node of this.nodes) if (!hiddenFrom(node, r)) n++;
    return n;
  }

  /**
   * Why the host could not take the request were the `gone` instances no
   * longer on it (their resources free, their group memberships forgotten),
   * or null. The snapshot is left as it was.
   */
  rejectWithout(hostId: string, r: Request, gone: readonly Held[]): string | null {
    const n = this.byId.get(hostId);
    if (!n) return 'unknown host';
    const forgotten: string[] = [];
    for (const h of gone) {
      n.free.vcpus += h.vcpus;
      n.free.memoryMib += h.memoryMib;
      n.free.diskGib += h.diskGib;
      for (const g of h.groups) if (this.removeMember(g, n)) forgotten.push(g);
    }
    try {
      return this.reject(n, r);
    } finally {
      for (const h of gone) {
        n.free.vcpus -= h.vcpus;
        n.free.memoryMib -= h.memoryMib;
        n.free.diskGib -= h.diskGib;
      }
      for (const g of forgotten) this.addMember(g, hostId);
    }
  }

  /** The request's score on the host (higher is better), as `place` would rank it. */
  scoreOn(hostId: string, r: Request): number {
    const n = this.byId.get(hostId);
    return n ? this.score(n, r) : -Infinity;
  }

  /**
   * Holds back on the host what is free of the request's resources, up to
   * what it asks for: room being made for it (by instances stopping there)
   * is not handed to anyone placed after it.
   */
  reserve(hostId: string, r: Pick<Request, 'vcpus' | 'memoryMib' | 'diskGib'>): void {
    const n = this.byId.get(hostId);
    if (!n) return;
    n.free.vcpus -= Math.max(0, Math.min(n.free.vcpus, r.vcpus));
    n.free.memoryMib -= Math.max(0, Math.min(n.free.memoryMib, r.memoryMib));
    n.free.diskGib -= Math.max(0, Math.min(n.free.diskGib, r.diskGib));
  }

  /** Free resources of a host as the snapshot sees them now. */
  freeOf(hostId: string): SchedHost['free'] | undefined {
    return this.byId.get(hostId)?.free;
  }
}
