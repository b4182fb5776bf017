import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApiError } from '../lib/errors.ts';
import { openSqliteStore } from '../store/sqlite/store.ts';
import type { Store } from '../store/store.ts';
import { InstanceService } from './instances.ts';

let store: Store;
let instances: InstanceService;

before(async () => {
  store = await openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'strata-instances-')), 'db') });
  instances = new InstanceService(store);
  await store.db
    .insertInto('projects')
    .values({
      id: 'prj_test',
      name: 'test',
      description: '',
      labels: '{}',
      quota_instances: null,
      quota_vcpus: null,
      quota_memory_mib: null,
      quota_disk_gib: null,
      used_instances: 0,
      used_vcpus: 0,
      used_memory_mib: 0,
      used_disk_gib: 0,
      created_at: 'now',
      updated_at: 'now',
      placement_strategy: 'binpack',
    })
    .execute();
});
after(() => store.close());

const refusal = (e: unknown): ApiError => {
  assert.ok(e instanceof ApiError);
  assert.equal(e.status, 400);
  return e;
};
const count = async () => (await store.db.selectFrom('instances').select('id').execute()).length;

test('a health check the kind cannot run is refused at creation, and nothing is stored', async () => {
  const exec = { type: 'exec' as const, command: ['true'] };
  await assert.rejects(
    instances.create('prj_test', { project: 'test', kind: 'vm', image: 'alpine', healthCheck: exec }, 'test'),
    e => /^body\.healthCheck\.type exec health checks are not supported for kind vm/.test(refusal(e).message),
  );
  assert.equal(await count(), 0);
  const row = await instances.create(
    'prj_test',
    { project: 'test', kind: 'container', image: 'busybox', healthCheck: exec },
    'test',
  );
  assert.equal(JSON.parse(row.options).healthCheck.type, 'exec');
  const vm = await instances.create(
    'prj_test',
    { project: 'test', kind: 'vm', image: 'alpine', healthCheck: { type: 'tcp', port: 22 } },
    'test',
  );
  assert.equal(await count(), 2);
  // Its kind's defaults: resources and options.
  assert.deepEqual([vm.vcpus, vm.memory_mib, vm.disk_gib], [1, 512, 2]);
  assert.equal(JSON.parse(vm.options).machine, 'microvm');
  assert.deepEqual([row.vcpus, row.memory_mib, row.disk_gib], [1, 256, 0]);
});

test("another kind's fields, and a kind nobody registered, are refused by the service too", async () => {
  await assert.rejects(
    instances.create('prj_test', { project: 'test', kind: 'vm', image: 'alpine', ports: [] }, 'test'),
    e => /^body\.ports applies to containers only/.test(refusal(e).message),
  );
  await assert.rejects(
    instances.create('prj_test', { project: 'test', kind: 'bogus', image: 'alpine' }, 'test'),
    e => refusal(e).message === 'body.kind must be one of container, vm, metal',
  );
  await assert.rejects(
    instances.create(
      'prj_test',
      {
        project: 'test',
        kind: 'container',
        image: 'busybox',
        tmpfs: [{ path: '/t' }, { path: '/t' }],
      },
      'test',
    ),
    e => refusal(e).message === 'body.tmpfs.1.path /t is mounted twice',
  );
});
