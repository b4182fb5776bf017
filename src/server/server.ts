// `strata server`: opens the store, bootstraps a fresh install, serves the API
// and runs the controllers (placement, host liveness, bare-metal nodes,
// deployments) on one runner.
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { buildApp, defaultHttpLimits, type App, type HttpLimits } from '../api/app.ts';
import { openSqliteStore } from '../store/sqlite/store.ts';
import type { Store } from '../store/store.ts';
import { deploymentsController } from '../controllers/deployments.ts';
import { liveness } from '../controllers/liveness.ts';
import { nodesController } from '../controllers/nodes.ts';
import { placer } from '../controllers/placer.ts';
import { type ControllerStats, Runner } from '../controllers/runner.ts';
import { AgentHub } from '../services/agent-hub.ts';
import { bootstrap } from '../services/bootstrap.ts';
import { InstanceService } from '../services/instances.ts';
import { defaultStepTimeouts, NodeService, type StepTimeouts } from '../services/nodes.ts';
import { SecretBox } from '../services/secret-box.ts';
import { StreamHub } from '../api/stream-hub.ts';
import { ensurePrivateDir } from '../lib/private-dir.ts';
import { VERSION } from '../lib/version.ts';

export interface ServerOptions {
  dataDir: string;
  host: string;
  port: number;
  logger?: Logger;
  heartbeatSeconds?: number;
  /** Timeouts and the connection cap of the HTTP server (src/api/app.ts). */
  limits?: Partial<HttpLimits>;
  /** How long logs, exec and console wait for a host's agent to reconnect; two heartbeats by default. */
  agentWaitSeconds?: number;
  synchronous?: 'full' | 'normal';
  /** Seconds each bare-metal provisioning step may take (src/services/nodes.ts has the defaults). */
  nodeStepTimeouts?: Partial<StepTimeouts>;
}

export interface RunningServer {
  app: App;
  store: Store;
  url: string;
  adminTokenFile: string;
  /** Wakes agents' long-polls when their assignments change. */
  agents: AgentHub;
  /** Each controller's passes so far: their number, time and the CPU of their writes. */
  controllerStats(): Record<string, ControllerStats>;
  /** Answers waiting long-polls at once, so agents do not hold the shutdown for their wait. */
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  ensurePrivateDir(o.dataDir);
  const logger = o.logger ?? pino({ level: 'info' });
  const store = await openSqliteStore({ file: join(o.dataDir, 'strata.db'), synchronous: o.synchronous ?? 'normal' });
  const boot = await bootstrap(store, o.dataDir);
  if (boot.created) logger.info({ tokenFile: boot.tokenFile }, 'first start: cluster admin token written');

  const heartbeatSeconds = o.heartbeatSeconds ?? 5;
  const streams = new StreamHub({ agentWaitMs: (o.agentWaitSeconds ?? 2 * heartbeatSeconds) * 1000 });
  const secrets = SecretBox.open(o.dataDir);
  const nodes = new NodeService(store, secrets, { ...defaultStepTimeouts, ...o.nodeStepTimeouts });
  const services = {
    instances: new InstanceService(store),
    nodes,
    agents: new AgentHub(store),
    streams,
    secrets,
    heartbeatSeconds,
  };
  const app = await buildApp({ store, services, logger, version: VERSION, limits: o.limits });
  // The kernel's accept queue holds connections while the event loop is busy
  // (a long controller pass). Node's default of 511 overflowed when a fleet
  // of agents connected at once: the kernel dropped their SYNs and the
  // clients waited out retransmits of 1, 3, 7, 15 s, so heartbeats came late
  // and hosts went not-ready. Sized to the connection cap (the kernel caps it
  // again at net.core.somaxconn).
  const backlog = o.limits?.maxConnections ?? defaultHttpLimits.maxConnections;
  await app.listen({ host: o.host, port: o.port, backlog });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host === '0.0.0.0' ? '127.0.0.1' : o.host;
  const controllers = new Runner({ subscribe: l => store.onEvent(l), log: logger })
    .add(placer(store, { nodes }))
    .add(liveness(store, { heartbeatSeconds }))
    .add(nodesController(nodes))
    // Under a steady stream of replica events, a pass every 200 ms at most
    // plans for many of them at once. Upgrading 10,000 simulated replicas
    // (bench/rollout.ts), passes back to back cost 2.3 to 5.7 ms of CPU per
    // replica; batched, 1.0 to 1.2 ms, and the upgrade took half the time.
    .add(deploymentsController(store, { batchMs: 200 }));
  controllers.start();
  return {
    app,
    store,
    url: `http://${host}:${port}`,
    adminTokenFile: boot.tokenFile,
    agents: services.agents,
    controllerStats: () => controllers.stats(),
    async close() {
      streams.closeAll();
      services.agents.close();
      await app.close();
      await controllers.stop();
      await store.close();
    },
  };
}
