// A Deployment for real: the CLI applies a spec file to a server whose agent
// runs the replicas as Podman containers; scaled, one killed behind its back,
// applied again, deleted.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { INSTANCE_LABEL } from '../src/drivers/container/driver.ts';
import {
  cliEnv,
  deploymentReplicas,
  PODMAN_SOCKET,
  removeDir,
  runCli,
  startContainerFixture,
  TEST_IMAGE,
  tempDir,
  until,
  type CliResult,
  type ContainerFixture,
} from './helpers.ts';

const docker = new Docker({ socketPath: PODMAN_SOCKET });
const dir = tempDir('strata-deploy-');
const file = join(dir, 'web.yaml');

let fx: ContainerFixture;

const spec = (replicas: number) => `# the web tier
apiVersion: strata/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${replicas}
  template:
    kind: container
    image: ${TEST_IMAGE}
    command: [sleep, "3600"]
    stopGraceSeconds: 1
    resources: {vcpus: 1, memoryMib: 64}
  strategy: {maxSurge: 1, maxUnavailable: 0}
`;

const strata = (...args: string[]): Promise<CliResult> =>
  runCli(args, cliEnv(join(dir, 'config.yaml'), dir, { STRATA_URL: fx.srv.url, STRATA_TOKEN: fx.srv.adminToken }));

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  return r;
}

const replicas = () => deploymentReplicas(fx.admin, 'web');
const running = async () => (await replicas()).filter(r => r.state === 'running' && r.desiredState === 'running');
const containers = async (state?: string) =>
  (await docker.listContainers({ all: true, filters: { label: [`io.strata.host=${fx.hostId}`] } })).filter(
    c => state === undefined || c.State === state,
  );

before(async () => {
  fx = await startContainerFixture('deploy-node');
});
after(async () => {
  await fx.close();
  removeDir(dir);
});

test('apply 3 replicas, scale to 1, a killed container is replaced, apply again changes nothing, delete removes all', async () => {
  writeFileSync(file, spec(3));
  const created = ok(await strata('apply', '-f', file, '--wait', '--timeout', '120'), 'apply');
  assert.equal(created.stdout, 'deployment/web created\n');
  const three = await running();
  assert.deepEqual(
    three.map(r => r.slot),
    [0, 1, 2],
  );
  assert.equal((await containers('running')).length, 3, 'three containers run in Podman');
  assert.equal(ok(await strata('apply', '-f', file), 'apply again').stdout, 'deployment/web unchanged\n');

  ok(await strata('deployment', 'scale', 'web', '1'), 'scale');
  await until('one replica left', async () => {
    const all = await replicas();
    return all.length === 1 && all[0]!.state === 'running' ? true : undefined;
  });
  await until('the others are gone from Podman', async () => ((await containers()).length === 1 ? true : undefined));

  // Killed behind Strata's back: the agent reports it failed; the deployment replaces it.
  const [victim] = await running();
  const [c] = await docker.listContainers({ filters: { label: [`${INSTANCE_LABEL}=${victim!.id}`] } });
  await docker.getContainer(c!.Id).kill();
  const replacement = await until(
    'a replacement runs in slot 0',
    async () => (await running()).find(r => r.slot === 0 && r.id !== victim!.id),
    120_000,
  );
  assert.notEqual(replacement.name, victim!.name);
  const events = (await fx.admin.get('/v1/events?limit=1000')).body.items as { type: string; data: any }[];
  const failed = events.find(e => e.type === 'deployment.replica-failed');
  assert.equal(failed?.data.instance, victim!.name);
  assert.equal(failed?.data.failures, 1);
  const replaced = events.find(e => e.type === 'deployment.replica-replaced');
  assert.deepEqual(replaced?.data, {
    slot: 0,
    instance: victim!.name,
    replacement: replacement.name,
    reason: 'failed',
  });
  const shown = ok(await strata('deployment', 'show', 'web'), 'show').stdout;
  assert.match(shown, /^Replacements:\s+1$/m);
  assert.match(shown, /^Backoff:\s+slot 0: 1 failed in a row \(/m);

  // The file now says what the deployment is: applying it changes nothing.
  writeFileSync(file, spec(1));
  assert.equal(ok(await strata('diff', '-f', file), 'diff').stdout, 'deployment/web: no changes\n');
  assert.equal(ok(await strata('apply', '-f', file), 'apply unchanged').stdout, 'deployment/web unchanged\n');

  const deleted = ok(await strata('delete', '-f', file, '--wait', '--timeout', '120'), 'delete');
  assert.match(deleted.stdout, /^deployment\/web deleted; 1 replica going$/m);
  assert.deepEqual((await fx.admin.get('/v1/instances?project=default')).body.items, []);
  assert.deepEqual((await fx.admin.get('/v1/deployments')).body.items, []);
  await until('no container left in Podman', async () => ((await containers()).length === 0 ? true : undefined));
});

test('a refused spec changes nothing and is reported at its line', async () => {
  writeFileSync(file, spec(2).replace('vcpus: 1', 'vcpus: 0').replace('replicas: 2', 'replicas: 2\n  paused: maybe'));
  const r = await strata('apply', '-f', file);
  assert.equal(r.code, 1);
  assert.deepEqual(r.stderr.trim().split('\n').sort(), [
    `error: ${file}:14:24: spec.template.resources.vcpus must be >= 1`,
    `error: ${file}:8:11: spec.paused must be boolean`,
  ]);
  assert.deepEqual((await fx.admin.get('/v1/deployments')).body.items, []);
});
