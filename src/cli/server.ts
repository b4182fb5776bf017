// `strata server`: the control plane.
import { Command, InvalidArgumentError, Option } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const defaultDataDir = (): string => process.env.STRATA_DATA ?? join(homedir(), '.local', 'share', 'strata');

export function serverCommand(): Command {
  return new Command('server')
    .description('run the control plane: API, store, scheduler and controllers')
    .option('--data <dir>', 'data directory (store, admin token)', defaultDataDir())
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7070')
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .addOption(
      new Option('--sync <mode>', 'store durability: normal survives any process crash, full also power loss')
        .choices(['normal', 'full'])
        .default('normal'),
    )
    .option('--heartbeat <seconds>', 'agent heartbeat interval', v => Number.parseInt(v, 10), 5)
    .option(
      '--token-rate <n>',
      'requests a second one API token may make (bursts of twice that); 0: no limit',
      v => Number.parseInt(v, 10),
      1000,
    )
    .option(
      '--metal-step-timeout <step=seconds>',
      'bare metal: how long a provisioning step may take, e.g. inspecting=300 (repeatable; steps: verifying, inspecting, cleaning, deploying, undeploying)',
      (v: string, prev: Record<string, number>) => {
        const m = /^(verifying|inspecting|cleaning|deploying|undeploying)=(\d{1,6})$/.exec(v);
        if (!m)
          throw new InvalidArgumentError(
            'want STEP=SECONDS with STEP one of verifying, inspecting, cleaning, deploying, undeploying',
          );
        return { ...prev, [m[1]!]: Number(m[2]) };
      },
      {} as Record<string, number>,
    )
    .option(
      '--max-connections <n>',
      'connections beyond this are closed as they come',
      v => Number.parseInt(v, 10),
      4096,
    )
    .action(
      async (o: {
        data: string;
        listen: string;
        logLevel: string;
        sync: 'normal' | 'full';
        heartbeat: number;
        tokenRate: number;
        maxConnections: number;
        metalStepTimeout: Record<string, number>;
      }) => {
        for (const [flag, v] of [
          ['--token-rate', o.tokenRate],
          ['--max-connections', o.maxConnections],
        ] as const) {
          if (!Number.isInteger(v) || v < 0) {
            process.stderr.write(`error: ${flag} must be a whole number, 0 or more\n`);
            process.exit(2);
          }
        }
        // Heavy modules load only for the roles that need them: the CLI stays quick.
        const { pino } = await import('pino');
        const { parseListen, startServer } = await import('../server/server.ts');
        const { host, port } = parseListen(o.listen);
        const logger = pino({ level: o.logLevel });
        const limits = {
          tokenRequestsPerSecond: o.tokenRate,
          tokenBurst: 2 * o.tokenRate,
          maxConnections: o.maxConnections,
        };
        const srv = await startServer({
          dataDir: o.data,
          host,
          port,
          logger,
          heartbeatSeconds: o.heartbeat,
          synchronous: o.sync,
          limits,
          nodeStepTimeouts: o.metalStepTimeout,
        });
        logger.info({ url: srv.url, adminTokenFile: srv.adminTokenFile }, 'strata server listening');
        const stop = async (signal: string) => {
          logger.info({ signal }, 'shutting down');
          await srv.close();
          process.exit(0);
        };
        process.once('SIGINT', () => void stop('SIGINT'));
        process.once('SIGTERM', () => void stop('SIGTERM'));
      },
    );
}
