// Placement: a snapshot of hosts in, a choice or an explanation out. Pure: no
// I/O, so it can be tested exhaustively and benchmarked on its own.
import type { InstanceKind } from '../model/kinds.ts';

export interface HostView {
  id: string;
  state: string;
  drivers: readonly string[];
  pool: string | null;
  labels: Readonly<Record<string, string>>;
  topology: { region: string; zone: string; rack: string };
  free: { vcpus: number; memoryMib: number; diskGib: number };
}

export interface ConstraintSpec {
  key: string;
  op: '==' | '!=' | 'exists' | 'not-exists';
  value?: string | undefined;
}

export interface PlacementRequest {
  projectId: string;
  kind: InstanceKind;
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  constraints: readonly ConstraintSpec[];
}

export type Placement = { ok: true; hostId: string } | { ok: false; reason: string };

/** Why a host cannot take the request, or null when it can. */
export function rejectReason(h: HostView, r: PlacementRequest, dedicatedPools: ReadonlySet<string>): string | null {
  if (h.state !== 'ready') return h.state;
  if (!h.drivers.includes(r.kind)) return `lack driver ${r.kind}`;
  if (h.pool !== null && h.pool !== r.projectId) return 'dedicated to another project';
  if (h.pool === null && dedicatedPools.has(r.projectId)) return 'shared pool (project has dedicated hosts)';
  for (const c of r.constraints) if (!constraintHolds(h, c)) return `constraint ${c.key} ${c.op}${c.value ? ` ${c.value}` : ''}`;
  if (h.free.vcpus < r.vcpus) return 'lack vcpus';
  if (h.free.memoryMib < r.memoryMib) return 'lack memory';
  if (h.free.diskGib < r.diskGib) return 'lack disk';
  return null;
}

function labelOf(h: HostView, key: string): string | undefined {
  if (key === 'topology.region') return h.topology.region || undefined;
  if (key === 'topology.zone') return h.topology.zone || undefined;
  if (key === 'topology.rack') return h.topology.rack || undefined;
  return h.labels[key];
}

export function constraintHolds(h: HostView, c: ConstraintSpec): boolean {
  const v = labelOf(h, c.key);
  switch (c.op) {
    case '==':
      return v === c.value;
    case '!=':
      return v !== c.value;
    case 'exists':
      return v !== undefined;
    case 'not-exists':
      return v === undefined;
  }
}

/**
 * Bin-packing first fit: among feasible hosts pick the one left with the least
 * free memory, so large requests still find room elsewhere.
 */
export function place(hosts: readonly HostView[], r: PlacementRequest, dedicatedPools: ReadonlySet<string>): Placement {
  let best: HostView | undefined;
  const reasons = new Map<string, number>();
  for (const h of hosts) {
    const why = rejectReason(h, r, dedicatedPools);
    if (why) {
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
      continue;
    }
    if (!best || h.free.memoryMib - r.memoryMib < best.free.memoryMib - r.memoryMib) best = h;
  }
  if (best) return { ok: true, hostId: best.id };
  return { ok: false, reason: explain(hosts.length, reasons) };
}

export function explain(total: number, reasons: ReadonlyMap<string, number>): string {
  if (total === 0) return 'no hosts registered';
  // Most frequent first; ties alphabetically, so the same cluster always reads the same.
  const parts = [...reasons.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([why, n]) => `${n} ${why}`);
  return `${total} host${total === 1 ? '' : 's'}: ${parts.join(', ')}`;
}
