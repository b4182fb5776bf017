// Label constraints on hosts, and the counted explanation of a refusal.

export interface ConstraintSpec {
  key: string;
  op: '==' | '!=' | 'exists' | 'not-exists';
  value?: string | undefined;
}

interface Labelled {
  labels: Readonly<Record<string, string>>;
  topology: { region: string; zone: string; rack: string };
}

function labelOf(h: Labelled, key: string): string | undefined {
  if (key === 'topology.region') return h.topology.region || undefined;
  if (key === 'topology.zone') return h.topology.zone || undefined;
  if (key === 'topology.rack') return h.topology.rack || undefined;
  return h.labels[key];
}

export function constraintHolds(h: Labelled, c: ConstraintSpec): boolean {
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

/** "12 hosts: 7 lack memory, 3 anti-affinity physical-host, 2 draining" */
export function explain(total: number, reasons: ReadonlyMap<string, number>): string {
  if (total === 0) return 'no hosts available to this project';
  // Most frequent first; ties alphabetically, so the same cluster always reads the same.
  const parts = [...reasons.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([why, n]) => `${n} ${why}`);
  return `${total} host${total === 1 ? '' : 's'}: ${parts.join(', ')}`;
}
