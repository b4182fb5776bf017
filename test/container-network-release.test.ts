// A project's network goes with its last container on the runtime; removing
// many of its containers at once checks for that once per turn of the
// project's lock, not once per container, so starts are not held behind a
// queue of checks.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type Docker from 'dockerode';
import { ContainerDriver, networkName } from '../src/drivers/container/driver.ts';
import { driverSpec, PODMAN_SOCKET, TEST_IMAGE } from './helpers.ts';

const project = `prj_release${process.pid}`;
const spec = (i: number) =>
  driverSpec({
    id: `ins_release${process.pid}x${i}`,
    name: `release-${i}`,
    project,
    host: '',
    image: TEST_IMAGE,
    command: ['sleep', '600'],
    env: {},
    resources: { vcpus: 1, memoryMib: 16, diskGib: 0 },
    pidsLimit: 64,
  });

test("removing a project's containers at once checks for its network's release a few times, and the network goes", async () => {
  const driver = new ContainerDriver({ socketPath: PODMAN_SOCKET, isolation: null });
  const n = 6;
  for (let i = 0; i < n; i++) await driver.start(spec(i));
  // Count the lists of the project's containers: what each release check costs.
  const docker = driver.docker as Docker & { listContainers: Docker['listContainers'] };
  const list = docker.listContainers.bind(docker);
  let checks = 0;
  docker.listContainers = ((opts?: { filters?: { label?: string[] } }) => {
    if (opts?.filters?.label?.some(l => l === `io.strata.project=${project}`)) checks++;
    return list(opts);
  }) as Docker['listContainers'];
  await Promise.all(Array.from({ length: n }, (_, i) => driver.destroy(spec(i).id)));
  assert.ok(checks <= 2, `${checks} release checks for ${n} containers removed at once`);
  assert.equal(
    await driver.docker
      .getNetwork(networkName(project))
      .inspect()
      .then(() => 'present')
      .catch(() => 'gone'),
    'gone',
  );
});
