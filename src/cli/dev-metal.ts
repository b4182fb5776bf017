// `strata dev --with-metal N`: N emulated bare-metal servers (src/rig/metal/),
// alternately behind an IPMI and a Redfish BMC, enrolled with the local agent
// as their conductor and taken to `available` in the background, each step
// printed as it ends.
import { join } from 'node:path';
import { Client } from './client.ts';

interface NodeState {
  provisionState: string;
  lastError: string;
}

export async function startDevMetal(o: {
  url: string;
  token: string;
  dataDir: string;
  bridge: string;
  count: number;
}): Promise<() => Promise<void>> {
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
  const say = (line: string) => process.stdout.write(`strata dev: ${line}\n`);
  void (async () => {
    // The local agent conducts them: wait for it to offer the metal driver.
    for (;;) {
      const hosts = await api.get<{ items: { drivers: string[]; state: string }[] }>('/v1/hosts');
      if (hosts.items.some(h => h.state === 'ready' && h.drivers.includes('metal'))) break;
      await new Promise(r => setTimeout(r, 500));
    }
    for (const n of rig.nodes) {
      const known = await api.get<NodeState>(`/v1/nodes/${n.name}`).catch(() => undefined);
      if (!known) await api.post('/v1/nodes', { name: n.name, bmc: n.bmcUrl, topology: { rack: 'rig' } });
    }
    await Promise.all(
      rig.nodes.map(async n => {
        for (const action of ['manage', 'inspect', 'provide'] as const) {
          const before = await api.get<NodeState>(`/v1/nodes/${n.name}`);
          if (before.provisionState === 'available' || before.provisionState === 'active') return;
          await api.post(`/v1/nodes/${n.name}/provision`, { action }).catch(() => undefined);
          for (;;) {
            const now = await api.get<NodeState>(`/v1/nodes/${n.name}`);
            if (now.provisionState.endsWith('failed')) {
              say(`${n.name}: ${now.provisionState}: ${now.lastError}`);
              return;
            }
            if (!['verifying', 'inspecting', 'cleaning'].includes(now.provisionState)) {
              say(`${n.name}: ${now.provisionState}`);
              break;
            }
            await new Promise(r => setTimeout(r, 1000));
          }
        }
      }),
    );
  })().catch((err: unknown) => say(`bare metal setup stopped: ${err instanceof Error ? err.message : String(err)}`));
  return () => rig.stop();
}
