// `strata dev`: a server and a supervised local agent in one command, with data
// under ~/.local/share/strata, and the CLI pointed at them.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { saveContext } from './config.ts';
import { defaultDataDir } from './server.ts';

/** The provisioning network of `--with-metal`'s emulated servers. */
const METAL_BRIDGE = 'strata-prov0';

export function devCommand(): Command {
  return new Command('dev')
    .description('run a server and a local agent with embedded defaults (the way to start)')
    .option('--data <dir>', 'data directory', defaultDataDir())
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7070')
    .option('--context <name>', 'CLI context to create and make current', 'dev')
    .option('--no-agent', 'run the server only')
    .option(
      '--with-metal <n>',
      'also emulate N bare-metal servers (QEMU machines behind IPMI and Redfish BMCs) and make them available',
      v => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 8) throw new InvalidArgumentError('a number of nodes from 0 to 8');
        return n;
      },
      0,
    )
    .action(async (o: { data: string; listen: string; context: string; agent: boolean; withMetal: number }) => {
      const { pino } = await import('pino');
      const { parseListen, startServer } = await import('../server/server.ts');
      const { devJoinToken } = await import('../server/dev-join-token.ts');
      const { host, port } = parseListen(o.listen);
      const logFile = join(o.data, 'server.log');
      const logger = pino({ level: 'info' }, pino.destination({ dest: logFile, mkdir: true, sync: false }));
      const srv = await startServer({ dataDir: o.data, host, port, logger });
      const token = readFileSync(srv.adminTokenFile, 'utf8').trim();
      const configFile = saveContext(o.context, { url: srv.url, token, project: 'default' }, { makeCurrent: true });

      let agent: ChildProcess | undefined;
      let stopping = false;
      const agentLog = join(o.data, 'agent.log');
      const startAgent = async () => {
        const joinToken = await devJoinToken(srv.store, o.data);
        const bin = new URL('../../bin/strata', import.meta.url).pathname;
        const out = openSync(agentLog, 'a');
        agent = spawn(
          bin,
          [
            'agent',
            '--server',
            srv.url,
            '--join-token',
            joinToken,
            '--data',
            join(o.data, 'agent'),
            '--name',
            hostname()
              .toLowerCase()
              .replace(/[^a-z0-9-]/g, '-'),
            ...(o.withMetal > 0 ? ['--metal-bridge', METAL_BRIDGE] : []),
          ],
          {
            stdio: ['ignore', out, out],
          },
        );
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
      let stopRig: (() => Promise<void>) | undefined;
      if (o.withMetal > 0) {
        const { startDevMetal } = await import('./dev-metal.ts');
        stopRig = await startDevMetal({
          url: srv.url,
          token,
          dataDir: o.data,
          bridge: METAL_BRIDGE,
          count: o.withMetal,
        });
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
                `  bare metal:   ${o.withMetal} emulated servers being enrolled, inspected and provided (strata node list)`,
              ]
            : []),
          '',
          'In another terminal:',
          '  strata host list',
          '  strata run --kind container 127.0.0.1:5000/library/busybox -- sleep 3600',
          '  strata instance list',
          '  strata events -f',
          '',
          'Ctrl-C stops the server and the agent (workloads keep running).',
          '',
        ].join('\n'),
      );

      const stop = async () => {
        if (stopping) return;
        stopping = true;
        if (agent && agent.exitCode === null) {
          const exited = new Promise(r => agent!.once('exit', r));
          agent.kill('SIGTERM');
          await exited;
        }
        await stopRig?.();
        await srv.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
