import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { nodesController } from './nodes.ts';
import { placer } from './placer.ts';
import { addHost, openRig, type Rig } from './testing.ts';
import { ApiError } from '../lib/errors.ts';
import type { HardwareOut as Hardware } from '../model/nodes.ts';
import type { UserPrincipal } from '../services/auth.ts';
import { InstanceService } from '../services/instances.ts';
import { NodeService } from '../services/nodes.ts';
import * as projects from '../services/projects.ts';
import { SecretBox } from '../services/secret-box.ts';

const admin: UserPrincipal = {
  kind: 'user',
  userId: 'usr_admin',
  name: 'admin',
  clusterAdmin: true,
  roles: new Map(),
  tokenId: 'tok_admin',
  expiresAt: null,
} as UserPrincipal;

const hardware: Hardware = {
  cpus: 2,
  memoryMib: 1024,
  disks: [{ name: 'vda', sizeBytes: 2 * 2 ** 30 }],
  nics: [{ name: 'eth0', mac: '52:54:00:12:34:56' }],
};

async function setup(timeouts = {}) {
  let nodes: NodeService | undefined;
  const box = new SecretBox(randomBytes(32));
  const rig = await openRig(
    s => {
      nodes = new NodeService(s, box, {
        verifying: 60,
        inspecting: 60,
        cleaning: 60,
        deploying: 60,
        undeploying: 60,
        ...timeouts,
      });
      return placer(s, { nodes });
    },
    () => nodesController(nodes!, { graceSeconds: 0, resyncMs: 1000 }),
  );
  const conductor = await addHost(rig, 'conductor', { drivers: JSON.stringify(['container', 'metal']) });
  return { rig, nodes: nodes!, conductor, instances: new InstanceService(rig.store) };
}

async function expectApiError(p: Promise<unknown>, status: number, re: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.status, status);
    assert.match(err.message, re);
    return true;
  });
}

/** Ends the step the node is in, as its conductor would. */
async function finish(nodes: NodeService, conductor: string, name: string, ok = true, hw?: Hardware) {
  const n = await nodes.show(admin, name);
  return nodes.report(conductor, n.id, {
    step: n.provision_state as 'verifying',
    stepStartedAt: n.step_started_at!,
    ok,
    ...(ok ? {} : { message: 'the BMC said no' }),
    ...(hw ? { hardware: hw } : {}),
  });
}

async function available(rig: Rig, nodes: NodeService, conductor: string, name: string, port: number) {
  await nodes.enroll(admin, { name, bmc: `ipmi://admin:secret@127.0.0.1:${port}`, topology: { zone: 'z1' } });
  await nodes.provision(admin, name, 'manage');
  await finish(nodes, conductor, name);
  await nodes.provision(admin, name, 'inspect');
  await finish(nodes, conductor, name, true, hardware);
  await nodes.provision(admin, name, 'provide');
  const n = await finish(nodes, conductor, name);
  await rig.runner.idle();
  return n;
}

test('a node goes enroll -> verifying -> manageable -> inspecting -> manageable -> cleaning -> available, each an event', async () => {
  const { rig, nodes, conductor } = await setup();
  const n = await available(rig, nodes, conductor, 'n1', 9001);
  assert.equal(n.provision_state, 'available');
  const moves = rig.events.filter(e => e.type === 'node.state').map(e => JSON.parse(e.data).to);
  assert.deepEqual(moves, ['verifying', 'manageable', 'inspecting', 'manageable', 'cleaning', 'available']);
  // Inspection filled the capacity the scheduler sees.
  const host = await rig.store.db.selectFrom('hosts').selectAll().where('id', '=', n.id).executeTakeFirstOrThrow();
  assert.deepEqual(
    [host.capacity_vcpus, host.capacity_memory_mib, host.capacity_disk_gib, host.state],
    [2, 1024, 2, 'ready'],
  );
  // The password is sealed, shown nowhere, and given to the conductor only.
  const row = await nodes.show(admin, 'n1');
  assert.doesNotMatch(JSON.stringify(row.bmc_address) + row.bmc_secret, /secret@/);
  assert.ok(rig.events.every(e => !e.data.includes('secret')));
  const [c] = await nodes.conducted(conductor);
  assert.equal(c?.bmcUrl, 'ipmi://admin:secret@127.0.0.1:9001');
  await rig.close();
});

test('illegal transitions are refused with 409 and change nothing; bad BMC URLs and a second enrollment of one BMC too', async () => {
  const { rig, nodes, conductor } = await setup();
  await nodes.enroll(admin, { name: 'n1', bmc: 'ipmi://admin:pw@10.0.0.5:623' });
  await expectApiError(nodes.provision(admin, 'n1', 'provide'), 409, /is enroll: provide needs it manageable/);
  await expectApiError(nodes.provision(admin, 'n1', 'inspect'), 409, /is enroll/);
  await expectApiError(
    nodes.enroll(admin, { name: 'n2', bmc: 'ipmi://other:pw@10.0.0.5' }),
    409,
    /already enrolled as node n1/,
  );
  await expectApiError(nodes.enroll(admin, { name: 'n3', bmc: 'ipmi://admin@10.0.0.6' }), 400, /no password/);
  await expectApiError(
    nodes.enroll(admin, { name: 'n3', bmc: 'ftp://a:b@10.0.0.6' }),
    400,
    /scheme must be ipmi, redfish or redfish\+http/,
  );
  await expectApiError(
    nodes.enroll(admin, { name: 'n3', bmc: 'ipmi://a:b@bad_host;rm' }),
    400,
    /not an IP address or DNS name|percent-encoded/,
  );
  assert.equal((await nodes.list(admin, { limit: 10, after: undefined })).length, 1);
  // A failed step lands in its named error state with the reason, and can be retried.
  await nodes.provision(admin, 'n1', 'manage');
  const failed = await finish(nodes, conductor, 'n1', false);
  assert.equal(failed.provision_state, 'verify failed');
  assert.equal(failed.last_error, 'the BMC said no');
  assert.equal((await nodes.provision(admin, 'n1', 'manage')).provision_state, 'verifying');
  // Maintenance stops actions; delete refuses a node in a step.
  await nodes.maintenance(admin, 'n1', true, 'fan');
  await expectApiError(nodes.provision(admin, 'n1', 'manage'), 409, /maintenance/);
  await expectApiError(nodes.remove(admin, 'n1'), 409, /is verifying/);
  await rig.close();
});

test('a late report of an older attempt is refused and changes nothing', async () => {
  const { rig, nodes, conductor } = await setup();
  await nodes.enroll(admin, { name: 'n1', bmc: 'ipmi://admin:pw@10.0.0.5' });
  const first = await nodes.provision(admin, 'n1', 'manage');
  await finish(nodes, conductor, 'n1', false);
  await new Promise(r => setTimeout(r, 2));
  await nodes.provision(admin, 'n1', 'manage');
  await expectApiError(
    nodes.report(conductor, first.id, { step: 'verifying', stepStartedAt: first.step_started_at!, ok: true }),
    409,
    /no longer in that step/,
  );
  assert.equal((await nodes.show(admin, 'n1')).provision_state, 'verifying');
  await rig.close();
});

test('a step past its deadline fails as timed out', async () => {
  const { rig, nodes } = await setup({ verifying: 0 });
  await nodes.enroll(admin, { name: 'n1', bmc: 'ipmi://admin:pw@10.0.0.5' });
  await nodes.provision(admin, 'n1', 'manage');
  await new Promise(r => setTimeout(r, 5));
  rig.clock.advance(1000);
  await rig.runner.idle();
  const n = await nodes.show(admin, 'n1');
  assert.equal(n.provision_state, 'verify failed');
  assert.match(n.last_error, /verifying timed out after 0 s/);
  await rig.close();
});

test('a metal instance takes a whole available node, is charged all of it, and its deletion undeploys and cleans the node', async () => {
  const { rig, nodes, conductor, instances } = await setup();
  const node = await available(rig, nodes, conductor, 'n1', 9001);
  const spec = { project: 'default', kind: 'metal', image: '127.0.0.1:5000/library/busybox:latest' } as const;
  const a = await instances.create(rig.projectId, { ...spec, name: 'a' }, 'test');
  const b = await instances.create(rig.projectId, { ...spec, name: 'b', waitForCapacity: false }, 'test');
  // A container is never placed on a node.
  await instances.create(rig.projectId, { ...spec, kind: 'container', name: 'c' }, 'test');
  await rig.runner.idle();
  const rows = new Map(
    (await rig.store.db.selectFrom('instances').selectAll().execute()).map(r => [r.name, r] as const),
  );
  assert.equal(rows.get('a')?.node_id, node.id);
  assert.equal(rows.get('a')?.host_id, conductor);
  assert.deepEqual([rows.get('a')?.vcpus, rows.get('a')?.memory_mib, rows.get('a')?.disk_gib], [2, 1024, 2]);
  assert.equal(rows.get('c')?.host_id, conductor);
  assert.equal(rows.get('c')?.node_id, null);
  // One node, two metal instances: the second finds it in use.
  assert.equal(rows.get('b')?.state, 'failed');
  assert.match(rows.get('b')?.message ?? '', /in use/);
  const project = await rig.store.db
    .selectFrom('projects')
    .selectAll()
    .where('id', '=', rig.projectId)
    .executeTakeFirstOrThrow();
  assert.equal(project.used_vcpus, 2 + 1 + 1);
  let n = await nodes.show(admin, 'n1');
  assert.deepEqual([n.provision_state, n.instance_id], ['deploying', a.id]);
  n = await finish(nodes, conductor, 'n1');
  assert.equal(n.provision_state, 'active');
  // Deleted: the instance goes (its agent reports), the node is undeployed, then cleaned.
  await instances.delete(a.id, 'test', () => undefined, true);
  await rig.runner.idle();
  n = await nodes.show(admin, 'n1');
  assert.deepEqual([n.provision_state, n.instance_id], ['undeploying', null]);
  n = await finish(nodes, conductor, 'n1');
  assert.deepEqual([n.provision_state, n.target_state], ['cleaning', 'available']);
  n = await finish(nodes, conductor, 'n1');
  assert.equal(n.provision_state, 'available');
  void b;
  await rig.close();
});

test('a metal instance whose node is beyond the quota waits, charged what it asked for, and takes the node once the quota is raised', async () => {
  const { rig, nodes, conductor, instances } = await setup();
  const node = await available(rig, nodes, conductor, 'n1', 9001);
  await projects.update(rig.store, admin, 'default', { quota: { vcpus: 1 } });
  const spec = { project: 'default', kind: 'metal', image: 'busybox', name: 'a' } as const;
  const a = await instances.create(rig.projectId, spec, 'test');
  await rig.runner.idle();
  const row = () => rig.store.db.selectFrom('instances').selectAll().where('id', '=', a.id).executeTakeFirstOrThrow();
  const used = async () =>
    (
      await rig.store.db
        .selectFrom('projects')
        .select('used_vcpus')
        .where('id', '=', rig.projectId)
        .executeTakeFirstOrThrow()
    ).used_vcpus;
  let r = await row();
  assert.equal(r.state, 'pending');
  assert.equal(r.message, "waiting for capacity: node n1 (2 vCPUs, 1024 MiB, 2 GiB) is beyond the project's quota");
  assert.equal(await used(), 1);
  await projects.update(rig.store, admin, 'default', { quota: { vcpus: 2 } });
  await rig.runner.idle();
  r = await row();
  assert.equal(r.state, 'scheduled');
  assert.equal(r.node_id, node.id);
  assert.equal(await used(), 2);
  await rig.close();
});

test('a failed deploy fails the instance with the reason', async () => {
  const { rig, nodes, conductor, instances } = await setup();
  await available(rig, nodes, conductor, 'n1', 9001);
  const a = await instances.create(
    rig.projectId,
    { project: 'default', kind: 'metal', image: 'busybox', name: 'a' },
    'test',
  );
  await rig.runner.idle();
  await finish(nodes, conductor, 'n1', false);
  const row = await rig.store.db.selectFrom('instances').selectAll().where('id', '=', a.id).executeTakeFirstOrThrow();
  assert.equal(row.state, 'failed');
  assert.match(row.message, /deploy failed: the BMC said no/);
  assert.equal((await nodes.show(admin, 'n1')).provision_state, 'deploy failed');
  await rig.close();
});
