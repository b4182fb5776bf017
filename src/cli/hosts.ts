// `strata host ...`: the machines instances run on. Agents register hosts
// themselves; cluster admins may also record, drain and remove them.
import { type Command, Option } from 'commander';
import { enc, type Host } from './client.ts';
import {
  collect,
  ctxOf,
  group,
  intArg,
  keyValues,
  leaf,
  listOptions,
  morePages,
  parseMemory,
  type ListFlags,
} from './common.ts';
import { age, col, labelsText, mib, out, renderList, renderObject, type Column } from './output.ts';
import { watch } from './watch.ts';

const topologyText = (h: Host) =>
  [h.topology.region, h.topology.zone, h.topology.rack].filter(Boolean).join('/') || '-';

const columns: Column<Host>[] = [
  col('NAME', h => h.name),
  col('ID', h => h.id),
  col('STATE', h => h.state),
  col('KIND', h => h.kind),
  col('TOPOLOGY', topologyText),
  col('VCPUS', h => h.allocatable.vcpus),
  col('MEMORY', h => mib(h.allocatable.memoryMib)),
  col('DRIVERS', h => h.drivers.join(',')),
  col('POOL', h => h.pool ?? 'shared'),
  col('AGE', h => age(h.createdAt)),
];

const fields = (h: Host): [string, unknown][] => [
  ['Name', h.name],
  ['ID', h.id],
  ['State', h.state],
  ['Kind', h.kind],
  ['Parent', h.parent],
  ['Region', h.topology.region],
  ['Zone', h.topology.zone],
  ['Rack', h.topology.rack],
  ['Labels', labelsText(h.labels)],
  ['Capacity', `${h.capacity.vcpus} vCPU, ${mib(h.capacity.memoryMib)} memory, ${h.capacity.diskGib}Gi disk`],
  [
    'Allocatable',
    `${h.allocatable.vcpus} vCPU, ${mib(h.allocatable.memoryMib)} memory, ${h.allocatable.diskGib}Gi disk`,
  ],
  ['Drivers', h.drivers.join(', ')],
  ['Pool', h.pool ?? 'shared'],
  ['Last heartbeat', h.lastHeartbeatAt ? `${h.lastHeartbeatAt} (${age(h.lastHeartbeatAt)} ago)` : 'never'],
  ['Info', h.info],
  ['Created', h.createdAt],
];

export function hostCommand(): Command {
  const cmd = group('host', 'manage hosts: physical machines and VMs that run instances').alias('hosts');

  cmd.addCommand(
    listOptions(leaf('list', 'list the hosts you can see').alias('ls')).action(async (o: ListFlags, c: Command) => {
      const ctx = ctxOf(c);
      const render = async () => {
        const page = await ctx.client.list<Host>('/v1/hosts', { limit: o.limit, labels: o.labels }, o.all ?? false);
        return (await renderList(page.items, columns, ctx.format)) + morePages(page.nextCursor, ctx.format);
      };
      if (o.watch) await watch(ctx, {}, render);
      out(await render());
    }),
  );

  cmd.addCommand(
    leaf('show', 'show a host: topology, capacity, drivers, heartbeat')
      .argument('<host>', 'host name or id')
      .option('-w, --watch', 're-render on every change of the host (Ctrl-C to stop)')
      .action(async (ref: string, o: { watch?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const first = await ctx.client.get<Host>(`/v1/hosts/${enc(ref)}`);
        const render = async (h?: Host) => {
          h ??= await ctx.client.get<Host>(`/v1/hosts/${enc(first.id)}`);
          return renderObject(h, fields(h), ctx.format);
        };
        if (o.watch) await watch(ctx, { resource: first.id }, () => render());
        out(await render(first));
      }),
  );

  cmd.addCommand(
    leaf('create', 'record a host by hand (cluster admins); agents register their own')
      .argument('<name>', 'lower-case letters, digits and dashes')
      .requiredOption('--vcpus <n>', 'vCPUs', intArg())
      .requiredOption('--memory <size>', 'memory: 4096 (MiB), 4Gi', parseMemory)
      .option('--disk <gib>', 'disk in GiB', intArg(), 0)
      .addOption(new Option('--kind <kind>', 'physical, or virtual for a VM').choices(['physical', 'virtual']))
      .option('--parent <instance>', 'the instance this host runs inside (nested hosts)')
      .option('--region <name>', 'topology: region')
      .option('--zone <name>', 'topology: zone')
      .option('--rack <name>', 'topology: rack')
      .option('--label <key=value>', 'label (repeatable)', collect)
      .option('--driver <driver>', 'driver it offers: container, vm, metal or sim (repeatable)', collect)
      .option('--pool <project>', 'dedicate the host to a project')
      .action(
        async (
          name: string,
          o: {
            vcpus: number;
            memory: number;
            disk: number;
            kind?: string;
            parent?: string;
            region?: string;
            zone?: string;
            rack?: string;
            label?: string[];
            driver?: string[];
            pool?: string;
          },
          c: Command,
        ) => {
          const ctx = ctxOf(c);
          const topology = o.region || o.zone || o.rack ? { region: o.region, zone: o.zone, rack: o.rack } : undefined;
          const h = await ctx.client.post<Host>('/v1/hosts', {
            name,
            kind: o.kind,
            parent: o.parent,
            topology,
            labels: keyValues(o.label, 'label'),
            capacity: { vcpus: o.vcpus, memoryMib: o.memory, diskGib: o.disk },
            drivers: o.driver,
            pool: o.pool,
          });
          out(ctx.format === 'table' ? `host ${h.name} created (${h.id})` : await renderObject(h, [], ctx.format));
        },
      ),
  );

  cmd.addCommand(
    leaf('delete', 'remove a host that holds no instances (cluster admins)')
      .alias('rm')
      .argument('<host>', 'host name or id')
      .option('--force', 'remove a host that is down together with the instances it held')
      .action(async (ref: string, o: { force?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/hosts/${enc(ref)}${o.force ? '?force=true' : ''}`);
        out(`host ${ref} deleted`);
      }),
  );

  for (const [verb, state, description] of [
    [
      'drain',
      'draining',
      'stop placing new instances on a host and move its deployment replicas elsewhere (cluster admins)',
    ],
    ['undrain', 'ready', 'return a drained host to service (cluster admins)'],
  ] as const) {
    cmd.addCommand(
      leaf(verb, description)
        .argument('<host>', 'host name or id')
        .action(async (ref: string, _o: unknown, c: Command) => {
          const ctx = ctxOf(c);
          const h = await ctx.client.patch<Host>(`/v1/hosts/${enc(ref)}`, { state });
          out(ctx.format === 'table' ? `host ${h.name} is ${h.state}` : await renderObject(h, [], ctx.format));
        }),
    );
  }
  return cmd;
}
