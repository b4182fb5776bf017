import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { packagesLoaded } from '../lib/packages-loaded.ts';
import { sameCapabilities } from '../model/capabilities.ts';
import {
  createDrivers,
  findKind,
  foreignFields,
  kindNames,
  loadKindFields,
  kinds,
  presentKindFields,
} from './index.ts';

test('container, vm and metal are registered, once each, with sound defaults', async () => {
  assert.deepEqual(kindNames, ['container', 'vm', 'metal']);
  for (const k of kinds) {
    assert.equal(findKind(k.name), k);
    assert.ok(k.resources.vcpus >= 1 && k.resources.memoryMib >= 4 && k.resources.diskGib >= 0, k.name);
    assert.ok(k.hostMemoryOverheadMib >= 0, k.name);
    assert.ok(k.capabilities.healthChecks.length > 0 || k.wholeHost, `${k.name} takes some health check`);
    // Defaults fill every output field, from an empty spec and from an empty stored document.
    const { output } = await k.fields();
    assert.deepEqual(Object.keys(k.options({})).sort(), Object.keys(output).sort(), k.name);
    assert.deepEqual(k.present({}), k.options({}), k.name);
    // No flag given, no field set: a kind's flags never add to another kind's spec by themselves.
    assert.deepEqual(k.cli.spec({}), {}, k.name);
    assert.ok(
      k.cli.flags.every(f => f.flags.startsWith('-')),
      k.name,
    );
  }
  assert.equal(findKind('bogus'), undefined);
});

test('every kind presents every output field', async () => {
  const outputs = [...(await loadKindFields()).values()].flatMap(f => Object.keys(f.output));
  // Two kinds may share a field (cloudInit: VMs and metal): it is presented once.
  assert.deepEqual(Object.keys(presentKindFields({})).sort(), [...new Set(outputs)].sort());
});

test("a field of another kind is named as that kind's", async () => {
  const [container, vm] = [findKind('container')!, findKind('vm')!];
  const fields = await loadKindFields();
  assert.deepEqual(foreignFields(container, { image: 'x', machine: 'q35', user: 'nobody' }, fields), [
    { field: 'body.machine', message: 'applies to VMs only (kind vm)' },
  ]);
  assert.deepEqual(foreignFields(vm, { ports: [], surely_unknown: 1 }, fields), [
    {
      field: 'body.ports',
      message: 'applies to containers only (kind container): a VM has its own address, disk and users',
    },
  ]);
});

test("each kind's driver declares what its kind does, and has the methods it claims", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-kinds-'));
  const drivers = await createDrivers({
    dataDir,
    dockerSocket: join(dataDir, 'no.sock'),
    vmAssets: join(dataDir, 'assets'),
    vmBootTimeoutSeconds: 60,
    vmBridge: 'strata-test0',
    vmSubnet: '10.250.0.0/24',
    metalBridge: '',
    metalCidr: '172.30.250.1/24',
    metalHttpPort: 8090,
    metalAssets: join(dataDir, 'metal'),
  });
  assert.deepEqual(
    drivers.map(d => d.name),
    kinds.map(k => k.name),
  );
  for (const d of drivers) {
    const k = findKind(d.name)!;
    assert.ok(sameCapabilities(d.capabilities, k.capabilities), d.name);
    assert.equal(typeof d.console === 'function', k.capabilities.console, `${d.name} console`);
    assert.equal(typeof d.reboot === 'function', k.capabilities.reboot, `${d.name} reboot`);
  }
});

test('loading the registry loads neither TypeBox nor driver code; its fields and drivers load when asked for', () => {
  // Every package the child resolves, as the CLI would load them.
  const loaded = (after: string) => packagesLoaded(new URL('./index.ts', import.meta.url).href, after);
  assert.deepEqual(loaded(''), []);
  assert.deepEqual(loaded('await k.loadKindFields();'), ['typebox']);
  const made = loaded(
    `await k.createDrivers({ dataDir: '/tmp', dockerSocket: '/nonexistent.sock', vmAssets: '/nonexistent', vmBootTimeoutSeconds: 1, vmBridge: 'x', vmSubnet: '10.250.0.0/24', metalBridge: '', metalCidr: '172.30.250.1/24', metalHttpPort: 8090, metalAssets: '/nonexistent' });`,
  );
  assert.ok(made.includes('dockerode'), made.join(' '));
});
