// `strata agent`: turns this machine into a host.
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { TopologyFlags } from '../model/topology.ts';
import { count, type SimFlags } from './agent-sim.ts';
import { DEFAULT_VM_ASSETS, defaultMetalAssets } from './host-assets.ts';
import { defaultDataDir } from './server.ts';

interface AgentFlags {
  server?: string;
  joinToken?: string;
  joinTokenFile?: string;
  name?: string;
  data?: string;
  config?: string;
  region?: string;
  zone?: string;
  rack?: string;
  label: string[];
  kind?: 'physical' | 'virtual';
  parent?: string;
  logLevel: string;
  dockerSocket?: string;
  registryAuth?: string;
  manageRuntime: boolean;
  vmAssets: string;
  vmBootTimeout: number;
  vmBridge: string;
  vmSubnet: string;
  metalBridge: string;
  metalCidr: string;
  metalPort: number;
  metalAssets: string;
  cpuOvercommit: number;
  sim?: number;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function settingsFile(f: AgentFlags): Record<string, unknown> {
  return f.config ? (parseYaml(readFileSync(f.config, 'utf8')) as Record<string, unknown>) : {};
}

/** Flags win over the config file; the file has the same keys (label: map). */
function settings(
  f: AgentFlags,
): Required<Pick<AgentFlags, 'server' | 'name' | 'data'>> & { joinToken?: string; topology: TopologyFlags } {
  const file = settingsFile(f);
  const str = (k: string) => (typeof file[k] === 'string' ? (file[k] as string) : undefined);
  const labels: Record<string, string> = { ...((file.labels as Record<string, string> | undefined) ?? {}) };
  for (const kv of f.label) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--label wants KEY=VALUE, got ${JSON.stringify(kv)}`);
    labels[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const server = f.server ?? str('server') ?? process.env.STRATA_URL;
  if (!server) throw new Error('--server URL is required (or `server:` in --config, or STRATA_URL)');
  let joinToken = f.joinToken ?? str('joinToken') ?? process.env.STRATA_JOIN_TOKEN;
  const tokenFile = f.joinTokenFile ?? str('joinTokenFile');
  if (!joinToken && tokenFile) joinToken = readFileSync(tokenFile, 'utf8').trim();
  const kind = f.kind ?? (str('kind') as 'physical' | 'virtual' | undefined);
  const out = {
    server,
    name:
      f.name ??
      str('name') ??
      hostname()
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '-'),
    data: f.data ?? str('data') ?? join(defaultDataDir(), 'agent'),
    topology: {
      region: f.region ?? str('region'),
      zone: f.zone ?? str('zone'),
      rack: f.rack ?? str('rack'),
      labels,
      kind,
      parent: f.parent ?? str('parent'),
    },
  };
  return joinToken ? { ...out, joinToken } : out;
}

function dockerSocket(flag: string | undefined): string {
  if (flag) return flag;
  const env = process.env.DOCKER_HOST;
  if (env?.startsWith('unix://')) return env.slice('unix://'.length);
  return '/run/podman/podman.sock';
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run the host agent: register this machine, heartbeat, run what the scheduler assigns')
    .option('--server <url>', 'control plane URL (env STRATA_URL)')
    .option('--join-token <token>', 'join token, needed at first registration (env STRATA_JOIN_TOKEN)')
    .option('--join-token-file <file>', 'read the join token from a file')
    .option('--name <name>', 'host name (default: this machine hostname)')
    .option('--data <dir>', 'agent state directory (default: ~/.local/share/strata/agent)')
    .option('--config <file>', 'YAML file with the same settings (server, name, region, zone, rack, labels, ...)')
    .option('--region <region>', 'topology: region')
    .option('--zone <zone>', 'topology: zone')
    .option('--rack <rack>', 'topology: rack')
    .option('--label <key=value>', 'host label (repeatable)', collect, [])
    .addOption(new Option('--kind <kind>', 'physical server or a virtual host').choices(['physical', 'virtual']))
    .option('--parent <instance>', 'for a nested host: the instance it runs inside')
    .option('--cpu-overcommit <ratio>', 'vCPUs of instances per host core', v => Number.parseFloat(v), 4)
    .option(
      '--docker-socket <path>',
      "Docker API socket for containers (default: DOCKER_HOST, else Podman's /run/podman/podman.sock)",
    )
    .option('--vm-assets <dir>', 'guest kernel, initramfs and VM image store (scripts/vm.sh)', DEFAULT_VM_ASSETS)
    .option('--vm-bridge <name>', 'host bridge the VMs are attached to (made if missing)', 'strata0')
    .option('--vm-subnet <cidr>', "the VMs' subnet on that bridge; the host takes its first address", '10.99.0.0/24')
    .option(
      '--metal-bridge <name>',
      'bare metal: the provisioning network bridge this host conducts nodes on (none: no metal driver)',
      '',
    )
    .option('--metal-cidr <cidr>', "bare metal: this host's address on the provisioning network", '172.30.250.1/24')
    .option('--metal-port <port>', "bare metal: the boot server's port there", v => Number.parseInt(v, 10), 8090)
    .option('--metal-assets <dir>', 'bare metal: the deploy ramdisk (scripts/metal.sh)', defaultMetalAssets())
    .option('--vm-boot-timeout <seconds>', 'a VM whose guest is not up by then fails', v => Number.parseInt(v, 10), 60)
    .option(
      '--no-manage-runtime',
      "do not start Podman's API service (podman system service) on the socket when nothing answers there, nor restart it when it dies (config: manageRuntime: false); a socket something else serves is never touched",
    )
    .option(
      '--registry-auth <file>',
      'registry credentials for pulls: an auth file as `docker login` or `podman login` writes it (default: $REGISTRY_AUTH_FILE if set)',
    )
    .option(
      '--sim <count>',
      'simulate COUNT hosts in this process instead of running this one: each registers as its own host (named NAME-001 ... from --name, default sim; identity under --data, default ~/.local/share/strata/sim) and runs its instances on the simulated driver; for control-plane benchmarks and tests, never for real work',
      count(1, 10_000),
    )
    .option('--sim-cpus <n>', 'with --sim: cores of each simulated host', count(1, 4096), 32)
    .option('--sim-memory <mib>', 'with --sim: memory (MiB) of each simulated host', count(256, 1 << 24), 131_072)
    .option('--sim-disk <gib>', 'with --sim: disk (GiB) of each simulated host', count(1, 1 << 20), 2000)
    .option('--sim-zones <n>', 'with --sim: zones the hosts are spread over (z1, z2, ...), in turn', count(1, 1000), 3)
    .option('--sim-racks <n>', 'with --sim: racks per zone (z1-r1, z1-r2, ...), in turn', count(1, 1000), 4)
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  strata agent --server http://10.0.0.1:7070 --join-token sjt_... --zone a --rack r1',
        '  strata agent --server http://10.0.0.1:7070 --join-token sjt_... --sim 1000 --sim-zones 3 --sim-racks 10',
        '',
        'A simulated workload behaves as its environment says (SIM_START_MS, SIM_START_FAIL, SIM_EXIT_AFTER_MS,',
        'SIM_EXIT_CODE, SIM_STOP=hang, SIM_STOP_MS, SIM_LOG); see docs/architecture.md.',
        '',
      ].join('\n'),
    )
    .action(async (f: AgentFlags & Omit<SimFlags, 'sim'>) => {
      let s: ReturnType<typeof settings>;
      try {
        s = settings(f);
      } catch (err) {
        process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(2);
      }
      if (f.sim !== undefined) {
        const { runSimFleet } = await import('./agent-sim.ts');
        return runSimFleet(
          { ...f, sim: f.sim },
          {
            server: s.server,
            joinToken: s.joinToken,
            prefix: f.name ?? 'sim',
            dataDir: f.data ?? join(defaultDataDir(), 'sim'),
            region: s.topology.region,
            labels: s.topology.labels ?? {},
            cpuOvercommit: f.cpuOvercommit,
            logLevel: f.logLevel,
          },
        );
      }
      const { pino } = await import('pino');
      const { Agent } = await import('../agent/agent.ts');
      const { RegistryAuth } = await import('../drivers/container/registry-auth.ts');
      const log = pino({ level: f.logLevel });
      const authFile = f.registryAuth ?? process.env.REGISTRY_AUTH_FILE;
      let registryAuth: InstanceType<typeof RegistryAuth> | undefined;
      try {
        registryAuth = authFile ? RegistryAuth.load(authFile) : undefined;
      } catch (err) {
        process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(2);
      }
      if (registryAuth) log.info({ file: authFile, registries: registryAuth.size }, 'registry credentials loaded');
      const socketPath = dockerSocket(f.dockerSocket);
      const manage = f.manageRuntime && settingsFile(f).manageRuntime !== false;
      const { RuntimeService } = await import('../agent/runtime-service.ts');
      const runtime = manage ? new RuntimeService({ socketPath, stateDir: join(s.data, 'podman'), log }) : undefined;
      if (runtime) {
        // Without an answering runtime the container driver is not offered; the agent still runs.
        await runtime.ensure().then(
          () => runtime.supervise(),
          (err: unknown) =>
            log.error({ err: String(err) }, 'no container runtime: containers are not offered on this host'),
        );
      }
      const { createDrivers } = await import('../kinds/index.ts');
      const drivers = await createDrivers({
        dataDir: s.data,
        dockerSocket: socketPath,
        registryAuth,
        vmAssets: f.vmAssets,
        vmBootTimeoutSeconds: f.vmBootTimeout,
        vmBridge: f.vmBridge,
        vmSubnet: f.vmSubnet,
        metalBridge: f.metalBridge,
        metalCidr: f.metalCidr,
        metalHttpPort: f.metalPort,
        metalAssets: f.metalAssets,
        log: (msg, fields) => log.info(fields ?? {}, msg),
      });
      const topology = { ...s.topology, cpuOvercommit: f.cpuOvercommit };
      const agent = new Agent({
        server: s.server,
        joinToken: s.joinToken,
        name: s.name,
        dataDir: s.data,
        topology,
        drivers,
        log,
      });
      const { installLastResort } = await import('../agent/last-resort.ts');
      installLastResort((scope, err) => agent.instanceCrashed(scope, err), log);
      try {
        await agent.start();
      } catch (err) {
        process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      }
      const stop = async () => {
        await runtime?.stop();
        await agent.stop();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
