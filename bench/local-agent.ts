// A real agent process on this machine's Podman beside a benchmark's server,
// with room for many small containers (64 vCPUs of instances per core).
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { client, spawnAgentProcess, until } from '../test/helpers.ts';

export interface LocalAgent {
  agent: ChildProcess;
  /** its host, once ready with the container driver */
  host: { id: string; name: string };
}

export async function startLocalAgent(
  server: { url: string; adminToken: string },
  o: { dataDir: string; name: string },
): Promise<LocalAgent> {
  const admin = client(server.url, server.adminToken);
  const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
  const agent = spawnAgentProcess({
    server: server.url,
    joinToken,
    dataDir: join(o.dataDir, 'agent'),
    name: o.name,
    cpuOvercommit: 64,
  });
  const host = await until('the agent offers containers', async () =>
    (await admin.get('/v1/hosts')).body.items.find(
      (h: { drivers: string[]; state: string }) => h.state === 'ready' && h.drivers.includes('container'),
    ),
  );
  return { agent, host };
}
