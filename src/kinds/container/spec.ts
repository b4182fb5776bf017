// A container's own spec fields: who it runs as, what it publishes on its
// host, and its root filesystem. A VM has its own address, disk and users.
import { type Static, Type } from 'typebox';
import { AbsolutePath, Closed, StringEnum } from '../../model/schema-kit.ts';
import type { Problem, SpecOf } from '../kind.ts';

export const Port = Type.Object(
  {
    containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    hostPort: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 65535,
        description: 'absent or 0: any free port, reported in observed.ports',
      }),
    ),
    protocol: Type.Optional(StringEnum(['tcp', 'udp'], { default: 'tcp' })),
    hostIp: Type.Optional(Type.String({ format: 'ipv4', description: 'host address to bind; default all' })),
  },
  Closed,
);
export const Tmpfs = Type.Object(
  {
    path: AbsolutePath,
    sizeMib: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024 })),
  },
  Closed,
);
export type Port = Static<typeof Port>;
export type TmpfsMount = Static<typeof Tmpfs>;

const User = Type.String({
  maxLength: 64,
  pattern: '^([A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?)?$',
  description: "user[:group], names or ids; default: the image's",
});

export const containerSpec = {
  user: Type.Optional(User),
  ports: Type.Optional(Type.Array(Port, { maxItems: 64 })),
  readOnlyRootfs: Type.Optional(Type.Boolean()),
  tmpfs: Type.Optional(Type.Array(Tmpfs, { maxItems: 16 })),
};
export type ContainerSpec = SpecOf<typeof containerSpec>;

export const containerOutput = {
  user: Type.String(),
  ports: Type.Array(Port),
  readOnlyRootfs: Type.Boolean(),
  tmpfs: Type.Array(Tmpfs),
};
type ContainerOutput = SpecOf<typeof containerOutput>;

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
