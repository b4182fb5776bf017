// A container's flags of `strata run` and its rows of `strata instance show`.
import type { CliFlag, Shown } from '../kind.ts';
import type { ContainerSpec, containerOutput, Port, TmpfsMount } from './fields.ts';

/** [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO], as docker run -p. */
export function parsePublish(v: string, prev: Port[] = []): Port[] {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(v.trim());
  if (!m?.[3]) throw new Error('expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], e.g. 8080:80 or 80');
  const port: Port = { containerPort: Number(m[3]) };
  if (m[2] !== undefined) port.hostPort = Number(m[2]);
  if (m[1] !== undefined) port.hostIp = m[1];
  if (m[4] !== undefined) port.protocol = m[4] as 'tcp' | 'udp';
  return [...prev, port];
}

/** PATH[:SIZE_MIB] */
export function parseTmpfs(v: string, prev: TmpfsMount[] = []): TmpfsMount[] {
  const m = /^(\/[^:]*)(?::(\d+))?$/.exec(v.trim());
  if (!m?.[1]) throw new Error('expected an absolute PATH[:SIZE_MIB], e.g. /tmp:64');
  return [...prev, m[2] ? { path: m[1], sizeMib: Number(m[2]) } : { path: m[1] }];
}

export const containerFlags: readonly CliFlag[] = [
  { flags: '-u, --user <user[:group]>', description: "user to run as, name or id (default: the image's)" },
  {
    flags: '--publish <[ip:][host:]port[/proto]>',
    description: 'publish a port on the host, e.g. 8080:80; without a host port any free one (repeatable)',
    parse: (v, prev) => parsePublish(v, prev as Port[] | undefined),
  },
  { flags: '--read-only', description: 'mount the root filesystem read-only' },
  {
    flags: '--tmpfs <path[:mib]>',
    description: 'mount a tmpfs, e.g. /tmp:64 (repeatable)',
    parse: (v, prev) => parseTmpfs(v, prev as TmpfsMount[] | undefined),
  },
];

export function containerFlagSpec(o: Record<string, unknown>): Partial<ContainerSpec> {
  const spec: Partial<ContainerSpec> = {};
  if (typeof o.user === 'string') spec.user = o.user;
  if (Array.isArray(o.publish)) spec.ports = o.publish as Port[];
  if (o.readOnly === true) spec.readOnlyRootfs = true;
  if (Array.isArray(o.tmpfs)) spec.tmpfs = o.tmpfs as TmpfsMount[];
  return spec;
}

/** Published ports: the bound host port when the agent has reported it. */
export function portsText(i: Shown<typeof containerOutput>): string {
  return i.ports
    .map(p => {
      const proto = p.protocol ?? 'tcp';
      const bound = i.observed.ports.find(
        b => b.containerPort === p.containerPort && b.protocol === proto && (!p.hostPort || b.hostPort === p.hostPort),
      );
      const host = bound ? `${bound.hostIp}:${bound.hostPort}` : `${p.hostIp ?? '0.0.0.0'}:${p.hostPort || '*'}`;
      return `${host}->${p.containerPort}/${proto}`;
    })
    .join(' ');
}

export function showContainer(i: Shown<typeof containerOutput>): [string, unknown][] {
  return [
    ['User', i.user || '(image default)'],
    ['Root fs', i.readOnlyRootfs ? 'read-only' : 'writable'],
    ['Tmpfs', i.tmpfs.map(t => (t.sizeMib ? `${t.path}:${t.sizeMib}Mi` : t.path)).join(' ')],
    ['Ports', portsText(i)],
  ];
}
