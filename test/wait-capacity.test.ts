// Waiting for capacity with real agents on Podman: an instance asking more
// memory than the only host has free waits in pending, saying why (in the
// API, `strata instance list --state pending` and `explain`); a second agent
// joins and the instance is placed there and runs. `--no-wait-for-capacity`
// fails at once instead.
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { HOST_LABEL } from '../src/drivers/container/driver.ts';
import {
  adminCli,
  killProcessesMentioning,
  PODMAN_SOCKET,
  removeDir,
  spawnAgentProcess,
  startContainerFixture,
  tempDir,
  until,
  type CliResult,
  type ContainerFixture,
} from './helpers.ts';

let fx: ContainerFixture;
const cliDir = tempDir('strata-wait-cli-');
const joinerData = tempDir('strata-wait-joiner-');
let joiner: ChildProcess | undefined;

let strata: (args: string[]) => Promise<CliResult>;

before(async () => {
  fx = await startContainerFixture('wait-first');
  strata = adminCli(fx.srv, cliDir);
});
after(async () => {
  joiner?.kill('SIGKILL');
  killProcessesMentioning(joinerData);
  const docker = new Docker({ socketPath: PODMAN_SOCKET });
  const hosts = (await fx.admin.get('/v1/hosts')).body.items as { id: string; name: string }[];
  for (const h of hosts.filter(x => x.name === 'wait-joiner'))
    for (const c of await docker.listContainers({ all: true, filters: { label: [`${HOST_LABEL}=${h.id}`] } }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  await fx.close();
  removeDir(joinerData);
  removeDir(cliDir);
});

const instance = async (id: string) => (await fx.admin.get(`/v1/instances/${id}`)).body;

test('an instance that fits on no host waits in pending, saying why, and runs on a host that joins', async () => {
  const free = (await fx.admin.get(`/v1/hosts/${fx.hostId}`)).body.allocatable.memoryMib as number;
  // A stopped instance holds its room on its host: all of the first host's memory but 128 MiB.
  const hog = await fx.run({ name: 'hog', desiredState: 'stopped', resources: { vcpus: 1, memoryMib: free - 128 } });
  await until('hog placed', async () => ((await instance(hog)).host === fx.hostId ? true : undefined));

  const big = await fx.run({
    name: 'big',
    command: ['sleep', '600'],
    resources: { vcpus: 1, memoryMib: 1024 },
    stopGraceSeconds: 1,
  });
  const waiting = await until('big waiting', async () => {
    const i = await instance(big);
    return i.message ? i : undefined;
  });
  assert.equal(waiting.state, 'pending');
  assert.equal(waiting.message, 'waiting for capacity: 1 host: 1 lack memory');
  assert.equal(waiting.waitForCapacity, true);
  const events = (await fx.admin.get(`/v1/events?resource=${big}`)).body.items as { type: string; data: unknown }[];
  assert.deepEqual(
    events.filter(e => e.type === 'instance.unplaced').map(e => e.data),
    [{ reason: '1 host: 1 lack memory', waiting: true }],
  );

  const listed = await strata(['instance', 'list', '--state', 'pending']);
  assert.match(listed.stdout, /PRIORITY/);
  assert.match(listed.stdout, /big .* 0 .* waiting for capacity: 1 host: 1 lack memory/);
  const explained = await strata(['instance', 'explain', 'big']);
  assert.match(explained.stdout, /Waiting for capacity \(priority 0\): 1 host: 1 lack memory/);

  // Not waiting: the same request fails at once, at its priority.
  const hasty = await strata([
    'run',
    '--name',
    'hasty',
    '--no-wait-for-capacity',
    '--priority',
    '-3',
    '-m',
    '1Gi',
    'busybox',
  ]);
  assert.match(hasty.stdout, /instance hasty created/);
  const hastyId = (await fx.admin.get('/v1/instances?project=default&name=hasty')).body.items[0].id as string;
  const failed = await fx.waitFor(hastyId, 'failed');
  assert.equal(failed.message, 'unplaced: 1 host: 1 lack memory');
  assert.equal(failed.priority, -3);
  assert.match(
    (await strata(['instance', 'show', 'hasty'])).stdout,
    /Priority:\s+-3 \(fails at once when no host can take it\)/,
  );

  joiner = spawnAgentProcess({ server: fx.srv.url, joinToken: fx.joinToken, dataDir: joinerData, name: 'wait-joiner' });
  const running = await fx.waitFor(big, 'running', 90_000);
  const joined = (await fx.admin.get(`/v1/hosts/${running.host}`)).body;
  assert.equal(joined.name, 'wait-joiner');
  assert.equal(running.message, '');
  assert.equal((await fx.admin.get(`/v1/instances/${big}/explain`)).body.waiting, null);
  // The instance that did not wait stays failed.
  assert.equal((await instance(hastyId)).state, 'failed');
});
