// `strata dev`: a server and a supervised local agent in one command, with data
// under ~/.local/share/strata, and the CLI pointed at them.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { count } from './agent-sim.ts';
import { saveContext } from './config.ts';
import type { DevMetal } from './dev-metal.ts';
import { DEFAULT_VM_ASSETS, defaultMetalAssets } from './host-assets.ts';
import { defaultDataDir } from './server.ts';

const BRIDGE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

interface DevFlags {
  data: string;
  listen: string;
  context: string;
  agent: boolean;
  withMetal: number;
  metalBridge: string;
  metalCidr: string;
  metalPort: number;
}

const fail = (message: string): never => {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
};

/** Refuses --with-metal where it cannot work, before anything starts, saying what is missing. */
async function checkMetal(o: DevFlags): Promise<void> {
  if (!o.agent) fail('--with-metal needs the local agent, which conducts the nodes: drop --no-agent');
  if (!BRIDGE_NAME.test(o.metalBridge)) fail(`--metal-bridge ${o.metalBridge}: 1-15 of A-Z a-z 0-9 _ . -`);
  const link = `/sys/class/net/${o.metalBridge}`;
  if (existsSync(link) && !existsSync(`${link}/bridge`))
    fail(`--metal-bridge ${o.metalBridge}: that interface exists and is not a bridge; name another one`);
  const { parseProvisioningCidr } = await import('../drivers/metal/provisioning/network.ts');
  try {
    parseProvisioningCidr(o.metalCidr);
  } catch (err) {
    fail(`--metal-cidr: ${(err as Error).message}`);
  }
  const { devMetalMissing } = await import('./dev-metal.ts');
  const missing = await devMetalMissing({
    deployDir: defaultMetalAssets(),
    kernelDir: join(DEFAULT_VM_ASSETS, 'kernel'),
  });
  if (missing.includes('root'))
    fail('--with-metal needs root: it makes a bridge and taps, and runs dnsmasq, BMC simulators and QEMU machines');
  if (missing.length > 0)
    fail(`--with-metal needs what scripts/metal.sh installs (run scripts/setup.sh); missing: ${missing.join(', ')}`);
}

export function devCommand(): Command {
  return new Command('dev')
    .description('run a server and a local agent with embedded defaults (the way to start)')
    .option('--data <dir>', 'data directory', defaultDataDir())
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7070')
    .option('--context <name>', 'CLI context to create and make current', 'dev')
    .option('--no-agent', 'run the server only')
    .option(
      '--with-metal <n>',
      'also emulate N bare-metal servers (QEMU machines behind IPMI and Redfish BMCs) and make them available (needs root)',
      count(0, 8),
      0,
    )
    .option('--metal-bridge <name>', "with --with-metal: the emulated servers' provisioning bridge", 'strata-prov0')
    .option('--metal-cidr <cidr>', "with --with-metal: the local agent's address on that bridge", '172.30.250.1/24')
    .option(
      '--metal-port <port>',
      "with --with-metal: the local agent's boot server port there",
      count(1, 65_535),
      8090,
    )
    .action(async (o: DevFlags) => {
      if (o.withMetal > 0) await checkMetal(o);
      const { pino } = await import('pino');
      const { parseListen, startServer } = await import('../server/server.ts');
      const { devJoinToken } = await import('../server/dev-join-token.ts');
      const { host, port } = parseListen(o.listen);
      const logFile = join(o.data, 'server.log');
      const logger = pino({ level: 'info' }, pino.destination({ dest: logFile, mkdir: true, sync: false }));
      const srv = await startServer({ dataDir: o.data, host, port, logger });
      const token = readFileSync(srv.adminTokenFile, 'utf8').trim();
      const configFile = saveContext(o.context, { url: srv.url, token, project: 'default' }, { makeCurrent: true });
      const agentName = hostname()
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '-');

      let agent: ChildProcess | undefined;
      // Awaited by stop() even while it starts, so that a rig half made is torn down too.
      let metal: Promise<DevMetal | undefined> = Promise.resolve(undefined);
      let stopping = false;
      const stop = async (code: number) => {
        if (stopping) return;
        stopping = true;
        if (agent && agent.exitCode === null && agent.signalCode === null) {
          const exited = new Promise(r => agent!.once('exit', r));
          agent.kill('SIGTERM');
          await exited;
        }
        await (await metal.catch(() => undefined))?.stop();
        await srv.close();
        process.exit(code);
      };
      process.once('SIGINT', () => void stop(0));
      process.once('SIGTERM', () => void stop(0));

      const agentLog = join(o.data, 'agent.log');
      const agentData = join(o.data, 'agent');
      const startAgent = async () => {
        if (stopping) return;
        const joinToken = await devJoinToken(srv.store, o.data);
        // The local agent's identity is this server's, wherever it listens this time.
        const { loadIdentity, saveIdentity } = await import('../agent/identity.ts');
        const identity = loadIdentity(agentData);
        if (identity && identity.server !== srv.url) saveIdentity(agentData, { ...identity, server: srv.url });
        const bin = new URL('../../bin/strata', import.meta.url).pathname;
        const out = openSync(agentLog, 'a');
        const metalFlags = ['--metal-bridge', o.metalBridge, '--metal-cidr', o.metalCidr];
        metalFlags.push('--metal-port', String(o.metalPort));
        agent = spawn(
          bin,
          [
            'agent',
            '--server',
            srv.url,
            '--join-token',
            joinToken,
            '--data',
            agentData,
            '--name',
            agentName,
            ...(o.withMetal > 0 ? metalFlags : []),
          ],
          {
            stdio: ['ignore', out, out],
          },
        );
        closeSync(out);
        const started = Date.now();
        agent.once('exit', (code, signal) => {
          if (stopping) return;
          const quick = Date.now() - started < 5000;
          process.stderr.write(
            `strata dev: local agent exited (${signal ?? code}); restarting${quick ? ' in 5 s' : ''}; see ${agentLog}\n`,
          );
          setTimeout(() => void startAgent(), quick ? 5000 : 500);
        });
      };
      if (o.agent) await startAgent();
      if (o.withMetal > 0) {
        const { startDevMetal } = await import('./dev-metal.ts');
        metal = startDevMetal({
          url: srv.url,
          token,
          dataDir: o.data,
          bridge: o.metalBridge,
          count: o.withMetal,
          conductor: agentName,
          say: line => process.stdout.write(`strata dev: ${line}\n`),
        });
        try {
          await metal;
        } catch (err) {
          process.stderr.write(`error: --with-metal: ${err instanceof Error ? err.message : String(err)}\n`);
          await stop(1);
          return;
        }
      }

      process.stdout.write(
        [
          '',
          `Strata is running at ${srv.url}`,
          `  API docs:     ${srv.url}/docs   (OpenAPI: ${srv.url}/openapi.json)`,
          `  admin token:  ${srv.adminTokenFile}`,
          `  data:         ${o.data}   (logs: server.log, agent.log)`,
          `  CLI context:  "${o.context}" is now current in ${configFile}`,
          o.agent ? `  local agent:  started, registering this machine as a host` : '  local agent:  off (--no-agent)',
          ...(o.withMetal > 0
            ? [
                `  bare metal:   ${o.withMetal} emulated servers on bridge ${o.metalBridge}, being enrolled, inspected and provided (progress below)`,
              ]
            : []),
          '',
          'In another terminal:',
          '  strata host list',
          '  strata run --kind container 127.0.0.1:5000/library/busybox -- sleep 3600',
          ...(o.withMetal > 0
            ? ['  strata node list', '  strata run --kind metal 127.0.0.1:5000/library/busybox -- echo hello']
            : []),
          '  strata instance list',
          '  strata events -f',
          '',
          `Ctrl-C stops the server and the agent (workloads keep running)${o.withMetal > 0 ? ' and powers the emulated servers off' : ''}.`,
          '',
        ].join('\n'),
      );
    });
}
