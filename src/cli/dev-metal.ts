// `strata dev --with-metal N`: N emulated bare-metal servers (src/rig/metal/),
// alternately behind an IPMI and a Redfish BMC, enrolled with the local agent
// as their conductor and taken to `available` in the background, each step
// printed as it starts and ends (and, after that, each change of their state).
// A node enrolled by an earlier run is taken on from the state it is in.
import { join } from 'node:path';
import { isStep, type NodeOut, type ProvisionAction } from '../model/nodes.ts';
import { ApiError, Client, type Host, type Page } from './client.ts';

export interface DevMetalOptions {
  url: string;
  token: string;
  dataDir: string;
  bridge: string;
  count: number;
  /** The local agent's host name: the nodes' conductor. */
  conductor: string;
  /** Where progress goes, a line at a time. */
  say: (line: string) => void;
}

export interface DevMetal {
  /** Stops following the nodes and tears the rig down (its machines powered off). */
  stop(): Promise<void>;
}

/** What this host lacks for `--with-metal`, in words (empty: nothing). */
export async function devMetalMissing(assets: { deployDir: string; kernelDir: string }): Promise<string[]> {
  const { conductorMissing, missingCommands } = await import('../drivers/metal/prerequisites.ts');
  const { RIG_COMMANDS } = await import('../rig/metal/rig.ts');
  const missing = await conductorMissing(assets);
  for (const c of await missingCommands(RIG_COMMANDS)) if (!missing.includes(c)) missing.push(c);
  return missing;
}

const POLL_MS = 1000;

/** The action that moves a node on towards `available`; undefined while a step runs or when there is none. */
function nextAction(n: NodeOut): ProvisionAction | undefined {
  switch (n.provisionState) {
    case 'enroll':
    case 'verify failed':
      return 'manage';
    case 'manageable':
      return n.hardware ? 'provide' : 'inspect';
    case 'inspect failed':
      return 'inspect';
    case 'clean failed':
      return 'provide';
    default:
      return undefined;
  }
}

/** A line on a node that has just come into its state. */
function describe(n: NodeOut, from: string | undefined): string {
  const s = n.provisionState;
  if (s === 'verifying') return 'verifying its BMC';
  if (s === 'inspecting') return 'inspecting (it boots the deploy ramdisk, which reports its hardware)';
  if (s === 'cleaning') return 'cleaning its disk (the deploy ramdisk again)';
  if (s === 'manageable' && from === 'inspecting' && n.hardware) {
    const disk = n.hardware.disks[0] ? `, ${Math.round(n.hardware.disks[0].sizeBytes / 2 ** 30)} GiB disk` : '';
    return `inspected: ${n.hardware.cpus} CPU, ${n.hardware.memoryMib} MiB memory${disk}`;
  }
  if (s === 'manageable' && from === 'verifying') return 'manageable (its BMC answers)';
  if (s === 'available')
    return `available: ${n.capacity.vcpus} vCPU, ${n.capacity.memoryMib} MiB, ${n.capacity.diskGib} GiB`;
  if (s === 'deploying') return `deploying instance ${n.instance ?? '-'}`;
  if (s === 'active') return `active: instance ${n.instance ?? '-'} is deployed on it`;
  if (s === 'undeploying') return 'undeploying (its instance was deleted)';
  if (s.endsWith('failed')) return `${s}: ${n.lastError || 'no reason given'}`;
  return s;
}

const hostOf = (url: string): string => new URL(url).host;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>(resolve => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

export async function startDevMetal(o: DevMetalOptions): Promise<DevMetal> {
  const { startRig } = await import('../rig/metal/rig.ts');
  const rig = await startRig({
    dir: join(o.dataDir, 'metal-rig'),
    bridge: o.bridge,
    nodes: Array.from({ length: o.count }, (_, i) => ({
      name: `node-${i + 1}`,
      bmc: i % 2 === 0 ? ('ipmi' as const) : ('redfish' as const),
      username: 'admin',
      password: `rig-${i + 1}-pass`,
    })),
  });
  const api = new Client(o.url, o.token);
  const say = (name: string, line: string) => o.say(`${name}: ${line}`);
  const stopping = new AbortController();
  const signal = stopping.signal;

  /** Enrolls the rig's nodes the server does not know; one whose BMC moved is enrolled again, when it is free. */
  const enroll = async (): Promise<void> => {
    for (const r of rig.nodes) {
      const known = await api.get<NodeOut>(`/v1/nodes/${r.name}`).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return undefined;
        throw e;
      });
      if (known && hostOf(known.bmc.address) === hostOf(r.bmcUrl)) continue;
      if (known) {
        if (known.instance || isStep(known.provisionState)) {
          say(
            r.name,
            `enrolled with a BMC at ${hostOf(known.bmc.address)}, but its BMC is now at ${hostOf(r.bmcUrl)}: ` +
              `left as it is (strata node delete ${r.name} once it holds nothing, then start strata dev again)`,
          );
          continue;
        }
        await api.delete(`/v1/nodes/${r.name}`);
      }
      await api.post('/v1/nodes', {
        name: r.name,
        bmc: r.bmcUrl,
        topology: { rack: 'dev' },
        conductor: o.conductor,
      });
      say(r.name, `enrolled (${r.bmcUrl.startsWith('ipmi') ? 'IPMI' : 'Redfish'} BMC at ${hostOf(r.bmcUrl)})`);
    }
  };

  /** Waits for the local agent to be ready and offer the metal driver; false when it is ready without it. */
  const conductorReady = async (): Promise<boolean> => {
    const started = Date.now();
    let told = false;
    while (!signal.aborted) {
      const hosts = await api.get<Page<Host>>('/v1/hosts', { limit: 1000 });
      const h = hosts.items.find(x => x.name === o.conductor);
      if (h?.state === 'ready') return h.drivers.includes('metal');
      if (!told && Date.now() - started > 30_000) {
        o.say(`waiting for the local agent ${o.conductor} to be ready (see agent.log)`);
        told = true;
      }
      await sleep(POLL_MS / 2, signal);
    }
    return false;
  };

  /**
   * Moves each node on until it is available (or holds an instance), or fails
   * a step of this run; then says so, and goes on printing what becomes of them.
   */
  const drive = async (): Promise<void> => {
    if (!(await conductorReady())) {
      if (!signal.aborted) o.say(`the local agent ${o.conductor} offers no metal driver: see agent.log`);
      return;
    }
    await enroll();
    const names = new Set(rig.nodes.map(n => n.name));
    const seen = new Map<string, string>();
    /** Nodes the bring-up is over for: settled, failed in this run, or in maintenance. */
    const settled = new Set<string>();
    /** A node found failed from an earlier run is tried once more. */
    const retried = new Set<string>();
    let bringingUp = true;
    while (!signal.aborted) {
      const page = await api.get<Page<NodeOut>>('/v1/nodes', { limit: 1000 });
      const mine = page.items.filter(n => names.has(n.name));
      for (const n of mine) {
        const from = seen.get(n.name);
        if (from !== n.provisionState) {
          seen.set(n.name, n.provisionState);
          if (from !== undefined || n.provisionState !== 'enroll') say(n.name, describe(n, from));
        }
        if (!bringingUp || settled.has(n.name)) continue;
        if (n.maintenance) {
          say(n.name, `in maintenance (${n.maintenanceReason || 'no reason given'}): left alone`);
          settled.add(n.name);
          continue;
        }
        if (['available', 'active', 'deploy failed'].includes(n.provisionState)) {
          settled.add(n.name);
          continue;
        }
        const action = nextAction(n);
        if (!action) continue;
        if (n.provisionState.endsWith('failed')) {
          // Failed in this run (seen in its step), or failed again: leave it to the user.
          if ((from !== undefined && isStep(from)) || retried.has(n.name)) {
            say(n.name, `left ${n.provisionState}; try again with: strata node ${action} ${n.name} --wait`);
            settled.add(n.name);
            continue;
          }
          retried.add(n.name);
          say(n.name, `trying again (${action})`);
        }
        const moved = await api.post<NodeOut>(`/v1/nodes/${n.name}/provision`, { action }).catch((e: unknown) => {
          // Another client moved it first: the next look says where it is.
          if (e instanceof ApiError && e.status === 409) return undefined;
          throw e;
        });
        if (moved && moved.provisionState !== n.provisionState) {
          seen.set(n.name, moved.provisionState);
          say(n.name, describe(moved, n.provisionState));
        }
      }
      if (bringingUp && settled.size === names.size) {
        bringingUp = false;
        const usable = mine.filter(n => n.provisionState === 'available').length;
        o.say(`${usable} of ${names.size} bare-metal nodes available (strata node list)`);
      }
      await sleep(POLL_MS, signal);
    }
  };

  const driving = drive().catch((err: unknown) => {
    if (!signal.aborted) o.say(`bare metal setup stopped: ${err instanceof Error ? err.message : String(err)}`);
  });

  return {
    async stop() {
      stopping.abort();
      await driving.catch(() => undefined);
      await rig.stop();
    },
  };
}
