// A deployment of VMs for real: `strata apply -f` of a `kind: vm` spec, its
// replicas QEMU guests booted by a real agent, upgraded v1 -> v2 one VM at a
// time, and what ends up running is QEMU processes of v2, serving v2.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  cliEnv,
  processesMentioning,
  qemuFor,
  removeDir,
  runCli,
  startContainerFixture,
  tempDir,
  until,
  type CliResult,
  type ContainerFixture,
  type ReplicaSeen,
} from './helpers.ts';

const dir = tempDir('strata-deploy-vm-');
const file = join(dir, 'vms.yaml');

let fx: ContainerFixture;

const spec = (version: string) => `
apiVersion: strata/v1
kind: Deployment
metadata:
  name: vms
spec:
  replicas: 2
  template:
    kind: vm
    image: busybox
    command: [sh, -c, 'mkdir -p /www && echo "$VERSION" > /www/index.html && exec httpd -f -p 8080 -h /www']
    env: {VERSION: ${version}}
    stopGraceSeconds: 2
    resources: {vcpus: 1, memoryMib: 128, diskGib: 1}
    healthCheck: {type: http, port: 8080, intervalSeconds: 1, timeoutSeconds: 3, retries: 3}
  strategy: {maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 300}
`;

const strata = (...args: string[]): Promise<CliResult> =>
  runCli(args, cliEnv(join(dir, 'config.yaml'), dir, { STRATA_URL: fx.srv.url, STRATA_TOKEN: fx.srv.adminToken }));

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r;
}

/** Every QEMU process of the agent's VMs, from their command lines. */
const allQemu = () => processesMentioning(`${join(fx.agentData, 'vm')}/`);

/**
 * Waits until the deployment's replicas are exactly two of its current
 * revision, each ready, its one QEMU process alive, and serving `version` at
 * its address; and no other QEMU of the agent runs.
 */
async function vmsServe(version: string): Promise<ReplicaSeen[]> {
  let seen = '';
  return until(
    `both VMs serving ${version}`,
    async () => {
      const id = (await fx.admin.get('/v1/deployments?name=vms')).body.items[0].id as string;
      const d = (await fx.admin.get(`/v1/deployments/${id}`)).body as { revision: number; instances: ReplicaSeen[] };
      const views = await Promise.all(
        d.instances.map(async r => {
          // A replica removed since the deployment was read (the rollout goes on) serves nothing.
          const got = await fx.admin.get(`/v1/instances/${r.id}`);
          const address = got.status === 200 ? (got.body.observed.address as string | null) : null;
          const page = address
            ? await fetch(`http://${address}:8080/`, { signal: AbortSignal.timeout(2000) })
                .then(async res => (res.ok ? (await res.text()).trim() : `HTTP ${res.status}`))
                .catch(() => null)
            : null;
          return { r, page, qemu: qemuFor(r.id) };
        }),
      );
      const agentQemu = allQemu();
      seen = `revision ${d.revision}: ${views
        .map(
          v =>
            `${v.r.name} rev ${v.r.revision} ${v.r.state}/${v.r.desiredState} ready=${v.r.ready} serves ${v.page} qemu ${v.qemu.join(',')}`,
        )
        .join('; ')}; the agent's QEMU processes: ${agentQemu.join(', ')}`;
      const good =
        views.length === 2 &&
        views.every(v => v.r.revision === d.revision && v.r.ready && v.page === version && v.qemu.length === 1) &&
        agentQemu.length === 2;
      return good ? views.map(v => v.r) : undefined;
    },
    120_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen: ${seen}`);
  });
}

before(async () => {
  fx = await startContainerFixture('deploy-vm-node', { drivers: ['vm'] });
});
after(async () => {
  await fx.close();
  removeDir(dir);
});

test('a deployment of 2 VMs rolls from v1 to v2: the rollout completes and QEMU runs only the v2 guests', async () => {
  writeFileSync(file, spec('v1'));
  assert.equal(ok(await strata('apply', '-f', file), 'apply v1').stdout, 'deployment/vms created\n');
  ok(await strata('rollout', 'status', 'vms', '--timeout', '150'), 'rollout status of v1');
  const v1 = await vmsServe('v1');

  writeFileSync(file, spec('v2'));
  assert.equal(ok(await strata('apply', '-f', file), 'apply v2').stdout, 'deployment/vms configured\n');
  const status = ok(await strata('rollout', 'status', 'vms', '--timeout', '150'), 'rollout status of v2');
  assert.match(status.stdout, /the rollout of revision 2 is complete$/m);
  const v2 = await vmsServe('v2');
  assert.equal(
    v2.some(r => v1.some(o => o.id === r.id)),
    false,
    'both VMs were replaced',
  );
  for (const r of v1) assert.deepEqual(qemuFor(r.id), [], `the QEMU of ${r.name} is gone`);
});
