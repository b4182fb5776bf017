import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { simFingerprint, simHostName, simPlacement } from './sim-fleet.ts';

test('hosts take zones in turn, then racks within each zone; rack names carry their zone', () => {
  const placed = Array.from({ length: 7 }, (_, i) => simPlacement(i, 2, 3));
  assert.deepEqual(
    placed.map(p => p.rack),
    ['z1-r1', 'z2-r1', 'z1-r2', 'z2-r2', 'z1-r3', 'z2-r3', 'z1-r1'],
  );
  assert.deepEqual(
    placed.map(p => p.zone),
    ['z1', 'z2', 'z1', 'z2', 'z1', 'z2', 'z1'],
  );
});

test('host names are numbered from 1, padded to the fleet size', () => {
  assert.equal(simHostName('sim', 0, 20), 'sim-001');
  assert.equal(simHostName('sim', 1233, 5000), 'sim-1234');
});

test('a simulated fingerprint is the given shape, memory held back as a real host does, marked simulated', () => {
  const fp = simFingerprint({ vcpus: 8, memoryMib: 16_384, diskGib: 100, cpuOvercommit: 2, zone: 'z1', rack: 'z1-r1' });
  const f = fp(['container', 'vm']);
  assert.deepEqual(f.capacity, { vcpus: 8, memoryMib: 16_384, diskGib: 100 });
  assert.deepEqual(f.allocatable, { vcpus: 16, memoryMib: 15_360, diskGib: 100 });
  assert.deepEqual(f.topology, { region: '', zone: 'z1', rack: 'z1-r1' });
  assert.deepEqual(f.drivers, ['container', 'vm']);
  assert.equal(f.info?.simulated, true);
});
