// Containers of different projects on one host are on different networks:
// neither reaches the other's address, while a project's own containers do.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { networkName } from '../src/drivers/container/driver.ts';
import { PODMAN_SOCKET, startContainerFixture, until, type ContainerFixture } from './helpers.ts';

const HTTP_IMAGE = '127.0.0.1:5000/library/busybox-http:latest';
let fx: ContainerFixture;

before(async () => {
  fx = await startContainerFixture('net-node');
  assert.equal((await fx.admin.post('/v1/projects', { name: 'net-b' })).status, 201);
});
after(() => fx.close());

/** Runs a one-shot probe in `project` and answers what it printed. */
async function probe(project: string, address: string): Promise<string> {
  const res = await fx.admin.post('/v1/instances', {
    project,
    kind: 'container',
    image: '127.0.0.1:5000/library/busybox:latest',
    resources: { vcpus: 1, memoryMib: 32 },
    command: ['sh', '-c', `nc -w 3 ${address} 8080 </dev/null >/dev/null && echo reached || echo blocked`],
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  await fx.waitFor(res.body.id, 'stopped');
  const logs = await fx.admin.get(`/v1/instances/${res.body.id}/logs`);
  const text = typeof logs.body === 'string' ? logs.body : JSON.stringify(logs.body);
  return /reached|blocked/.exec(text)?.[0] ?? text;
}

test("a project's containers reach each other; another project's do not", async () => {
  const web = await fx.run({ image: HTTP_IMAGE, stopGraceSeconds: 1 });
  const running = await fx.waitFor(web, 'running');
  const address = running.observed.address as string;
  assert.match(address, /^\d+\.\d+\.\d+\.\d+$/);
  assert.equal(await probe('default', address), 'reached', 'the same project reaches it');
  assert.equal(await probe('net-b', address), 'blocked', 'another project does not');
  // Each project has its own network on the host, isolated in the runtime.
  const docker = new Docker({ socketPath: PODMAN_SOCKET });
  const project = (await fx.admin.get('/v1/projects/net-b')).body.id as string;
  const net = (await docker.getNetwork(networkName(project)).inspect()) as { Name: string };
  assert.equal(net.Name, networkName(project));
  const firstBridge = bridgeOf(networkName(project));
  assert.match(firstBridge, /^st[a-z2-7]{13}$/);
  // The agent's own rule keeps the bridge apart, whatever the runtime's rules do.
  assert.match(strataRules(), new RegExp(`iifname "${firstBridge}" oifname != "${firstBridge}" oifname "st\\*" drop`));
  // Its last container gone, the project's network goes too: networks do not pile up.
  for (const i of (await fx.admin.get('/v1/instances?project=net-b')).body.items as { id: string }[]) {
    assert.equal((await fx.admin.delete(`/v1/instances/${i.id}`)).status, 202);
  }
  await until('the network is removed', async () =>
    (await docker
      .getNetwork(networkName(project))
      .inspect()
      .catch(() => undefined)) === undefined
      ? true
      : undefined,
  );
  // Made again, the project's network takes a bridge name never used before
  // (an old container's late clean-up deletes the rules of the name it had).
  assert.equal(await probe('net-b', address), 'blocked', 'another project still does not');
  assert.notEqual(bridgeOf(networkName(project)), firstBridge);
  // The rule of a bridge that is gone is gone too: rules do not pile up.
  assert.doesNotMatch(strataRules(), new RegExp(`"${firstBridge}"`));
});

/** The agent's isolation rules (src/drivers/container/isolation.ts). */
function strataRules(): string {
  return execFileSync('nft', ['list', 'chain', 'inet', 'strata', 'isolate'], { encoding: 'utf8' });
}

/** The Linux bridge of a Podman network. */
function bridgeOf(name: string): string {
  return execFileSync('podman', ['network', 'inspect', name, '--format', '{{.NetworkInterface}}'], {
    encoding: 'utf8',
  }).trim();
}
