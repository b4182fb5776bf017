// A container's defaults, what it presents, and what its schema cannot check.
import type { Problem } from '../kind.ts';
import type { ContainerOutput, ContainerSpec } from './fields.ts';

export function containerOptions(s: ContainerSpec): ContainerOutput {
  return {
    user: s.user ?? '',
    ports: (s.ports ?? []).map(p => ({ ...p, protocol: p.protocol ?? 'tcp', hostPort: p.hostPort ?? 0 })),
    readOnlyRootfs: s.readOnlyRootfs ?? false,
    tmpfs: s.tmpfs ?? [],
  };
}

export function presentContainer(o: Partial<ContainerOutput>): ContainerOutput {
  return { user: o.user ?? '', ports: o.ports ?? [], readOnlyRootfs: o.readOnlyRootfs ?? false, tmpfs: o.tmpfs ?? [] };
}

/** One host port published twice, one path mounted twice: the runtime would refuse them at start. */
export function checkContainer(s: ContainerSpec): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const [i, p] of (s.ports ?? []).entries()) {
    if (!p.hostPort) continue;
    const key = `${p.hostIp ?? '0.0.0.0'}:${p.hostPort}/${p.protocol ?? 'tcp'}`;
    if (seen.has(key)) problems.push({ field: `body.ports.${i}.hostPort`, message: `${key} is published twice` });
    seen.add(key);
  }
  const paths = new Set<string>();
  for (const [i, t] of (s.tmpfs ?? []).entries()) {
    if (paths.has(t.path)) problems.push({ field: `body.tmpfs.${i}.path`, message: `${t.path} is mounted twice` });
    paths.add(t.path);
  }
  return problems;
}
