// `strata node ...`: bare-metal servers (cluster admins): enroll by BMC, move
// through the provisioning states, maintenance, removal.
import type { Command } from 'commander';
import type { Static } from 'typebox';
import type { Node as NodeSchema, ProvisionAction } from '../model/nodes.ts';
import { enc } from './client.ts';
import {
  type Ctx as CliContext,
  collect,
  ctxOf,
  group,
  keyValues,
  leaf,
  listOptions,
  morePages,
  type ListFlags,
} from './common.ts';
import { age, col, labelsText, mib, out, renderList, renderObject, type Column } from './output.ts';

type Node = Static<typeof NodeSchema>;

const steps = new Set(['verifying', 'inspecting', 'cleaning', 'deploying', 'undeploying']);

const stateText = (n: Node) =>
  `${n.provisionState}${n.targetState && steps.has(n.provisionState) ? ` -> ${n.targetState}` : ''}${n.maintenance ? ' (maintenance)' : ''}`;

const columns: Column<Node>[] = [
  col('NAME', n => n.name),
  col('STATE', stateText),
  col('BMC', n => n.bmc.address),
  col('VCPUS', n => n.capacity.vcpus || '-'),
  col('MEMORY', n => (n.capacity.memoryMib ? mib(n.capacity.memoryMib) : '-')),
  col('INSTANCE', n => n.instance ?? '-'),
  col('CONDUCTOR', n => n.conductor),
  col('AGE', n => age(n.createdAt)),
];

const fields = (n: Node): [string, unknown][] => [
  ['Name', n.name],
  ['ID', n.id],
  ['Provision state', stateText(n)],
  ['Last error', n.lastError || '-'],
  ['Maintenance', n.maintenance ? `on${n.maintenanceReason ? `: ${n.maintenanceReason}` : ''}` : 'off'],
  ['BMC', `${n.bmc.address} (${n.bmc.protocol})`],
  ['Conductor', n.conductor],
  ['Topology', [n.topology.region, n.topology.zone, n.topology.rack].filter(Boolean).join('/') || '-'],
  ['Labels', labelsText(n.labels)],
  [
    'Capacity',
    n.hardware
      ? `${n.capacity.vcpus} vCPU, ${mib(n.capacity.memoryMib)} memory, ${n.capacity.diskGib}Gi disk`
      : 'not inspected yet',
  ],
  ['Disks', n.hardware?.disks.map(d => `${d.name} ${Math.round(d.sizeBytes / 2 ** 20)}Mi`).join(', ') || '-'],
  ['NICs', n.hardware?.nics.map(x => `${x.name} ${x.mac}`).join(', ') || '-'],
  ['Instance', n.instance ?? '-'],
  ['Step started', n.stepStartedAt ?? '-'],
  ['Step deadline', n.stepDeadlineAt ?? '-'],
  ['Created', n.createdAt],
];

/** Follows a node until its step ends, printing each state it passes; fails when it lands in an error state. */
async function follow(ctx: CliContext, first: Node): Promise<Node> {
  let n = first;
  let said = '';
  for (;;) {
    const line = stateText(n);
    if (line !== said && ctx.format === 'table') process.stderr.write(`node ${n.name}: ${line}\n`);
    said = line;
    if (!steps.has(n.provisionState)) break;
    await new Promise(r => setTimeout(r, 1000));
    n = await ctx.client.get<Node>(`/v1/nodes/${enc(n.id)}`);
  }
  if (n.provisionState.endsWith('failed')) throw new Error(`node ${n.name} is ${n.provisionState}: ${n.lastError}`);
  return n;
}

function action(name: ProvisionAction, help: string): Command {
  return leaf(name, help)
    .argument('<node>', 'node name or id')
    .option('--wait', 'follow the node until the step ends; fail if it fails')
    .action(async (ref: string, o: { wait?: boolean }, c: Command) => {
      const ctx = ctxOf(c);
      let n = await ctx.client.post<Node>(`/v1/nodes/${enc(ref)}/provision`, { action: name });
      if (o.wait) n = await follow(ctx, n);
      out(ctx.format === 'table' ? `node ${n.name}: ${stateText(n)}` : await renderObject(n, [], ctx.format));
    });
}

export function nodeCommand(): Command {
  const cmd = group('node', 'manage bare-metal nodes (cluster admins): enroll, inspect, clean, provide').alias('nodes');

  cmd.addCommand(
    listOptions(leaf('list', 'list the bare-metal nodes').alias('ls')).action(async (o: ListFlags, c: Command) => {
      const ctx = ctxOf(c);
      const page = await ctx.client.list<Node>('/v1/nodes', { limit: o.limit }, o.all ?? false);
      out((await renderList(page.items, columns, ctx.format)) + morePages(page.nextCursor, ctx.format));
    }),
  );

  cmd.addCommand(
    leaf('show', 'show a node: provision state, last error, BMC, hardware found by inspection')
      .argument('<node>', 'node name or id')
      .action(async (ref: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        const n = await ctx.client.get<Node>(`/v1/nodes/${enc(ref)}`);
        out(await renderObject(n, fields(n), ctx.format));
      }),
  );

  cmd.addCommand(
    leaf('enroll', 'enroll a server by its BMC; it starts in `enroll` (then: strata node manage)')
      .argument('<name>', 'lower-case letters, digits and dashes')
      .requiredOption(
        '--bmc <url>',
        'ipmi://USER:PASS@HOST[:PORT], redfish://USER:PASS@HOST[:PORT] (https) or redfish+http://...',
      )
      .option('--region <name>', 'topology: region')
      .option('--zone <name>', 'topology: zone')
      .option('--rack <name>', 'topology: rack')
      .option('--label <key=value>', 'label (repeatable)', collect)
      .option('--conductor <host>', 'the host whose agent drives the node (default: the least busy one)')
      .option('--manage', 'go on to verify the BMC at once (strata node manage)')
      .action(
        async (
          name: string,
          o: {
            bmc: string;
            region?: string;
            zone?: string;
            rack?: string;
            label?: string[];
            conductor?: string;
            manage?: boolean;
          },
          c: Command,
        ) => {
          const ctx = ctxOf(c);
          const topology = o.region || o.zone || o.rack ? { region: o.region, zone: o.zone, rack: o.rack } : undefined;
          let n = await ctx.client.post<Node>('/v1/nodes', {
            name,
            bmc: o.bmc,
            topology,
            labels: keyValues(o.label, 'label'),
            conductor: o.conductor,
          });
          if (o.manage)
            n = await follow(
              ctx,
              await ctx.client.post<Node>(`/v1/nodes/${enc(n.id)}/provision`, { action: 'manage' }),
            );
          out(
            ctx.format === 'table'
              ? `node ${n.name} enrolled (${n.id}): ${stateText(n)}`
              : await renderObject(n, [], ctx.format),
          );
        },
      ),
  );

  cmd.addCommand(action('manage', 'verify the BMC (reachable, credentials good): enroll -> verifying -> manageable'));
  cmd.addCommand(
    action('inspect', 'boot the deploy ramdisk and record the hardware it finds: -> inspecting -> manageable'),
  );
  cmd.addCommand(action('clean', 'wipe the disks: manageable -> cleaning -> manageable'));
  cmd.addCommand(action('provide', 'clean, then offer the node to the scheduler: -> cleaning -> available'));

  cmd.addCommand(
    leaf('maintenance', 'turn maintenance on (the conductor leaves the node alone, nothing is placed on it) or off')
      .argument('<on|off>', 'on or off')
      .argument('<node>', 'node name or id')
      .option('--reason <text>', 'why, shown with the node')
      .action(async (onOff: string, ref: string, o: { reason?: string }, c: Command) => {
        if (onOff !== 'on' && onOff !== 'off')
          throw new Error(`maintenance takes on or off, not ${JSON.stringify(onOff)}`);
        const ctx = ctxOf(c);
        const n = await ctx.client.put<Node>(`/v1/nodes/${enc(ref)}/maintenance`, {
          on: onOff === 'on',
          ...(o.reason ? { reason: o.reason } : {}),
        });
        out(ctx.format === 'table' ? `node ${n.name}: maintenance ${onOff}` : await renderObject(n, [], ctx.format));
      }),
  );

  cmd.addCommand(
    leaf('delete', 'remove a node that holds no instance and runs no step')
      .alias('rm')
      .argument('<node>', 'node name or id')
      .action(async (ref: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/nodes/${enc(ref)}`);
        out(ctx.format === 'table' ? `node ${ref} deleted` : '');
      }),
  );
  return cmd;
}
