import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { place, type HostView, type PlacementRequest } from './place.ts';

const host = (id: string, over: Partial<HostView> = {}): HostView => ({
  id,
  state: 'ready',
  drivers: ['container', 'vm'],
  pool: null,
  labels: {},
  topology: { region: 'r1', zone: 'a', rack: 'r1' },
  free: { vcpus: 4, memoryMib: 4096, diskGib: 100 },
  ...over,
});
const req = (over: Partial<PlacementRequest> = {}): PlacementRequest => ({
  projectId: 'p1',
  kind: 'container',
  vcpus: 1,
  memoryMib: 512,
  diskGib: 1,
  constraints: [],
  ...over,
});

test('picks the fullest host that still fits', () => {
  const r = place([host('a'), host('b', { free: { vcpus: 4, memoryMib: 1024, diskGib: 100 } })], req(), new Set());
  assert.deepEqual(r, { ok: true, hostId: 'b' });
});

test('explains every refusal by count', () => {
  const hosts = [
    host('a', { state: 'draining' }),
    host('b', { drivers: ['container'] }),
    host('c', { free: { vcpus: 4, memoryMib: 100, diskGib: 100 } }),
    host('d', { free: { vcpus: 4, memoryMib: 100, diskGib: 100 } }),
  ];
  const r = place(hosts, req({ kind: 'vm' }), new Set());
  assert.deepEqual(r, { ok: false, reason: '4 hosts: 2 lack memory, 1 draining, 1 lack driver vm' });
});

test('honours label and topology constraints', () => {
  const hosts = [host('a', { labels: { gpu: 'yes' } }), host('b', { topology: { region: 'r1', zone: 'b', rack: 'x' } })];
  assert.deepEqual(place(hosts, req({ constraints: [{ key: 'gpu', op: 'exists' }] }), new Set()), { ok: true, hostId: 'a' });
  assert.deepEqual(place(hosts, req({ constraints: [{ key: 'topology.zone', op: '==', value: 'b' }] }), new Set()), { ok: true, hostId: 'b' });
  assert.equal(place(hosts, req({ constraints: [{ key: 'gpu', op: '==', value: 'no' }] }), new Set()).ok, false);
});

test('dedicated pools keep other projects out and their project in', () => {
  const hosts = [host('shared'), host('mine', { pool: 'p1' }), host('theirs', { pool: 'p2' })];
  assert.deepEqual(place(hosts, req(), new Set(['p1'])), { ok: true, hostId: 'mine' });
  assert.deepEqual(place(hosts, req({ projectId: 'p3' }), new Set(['p1', 'p2'])), { ok: true, hostId: 'shared' });
});

test('no hosts at all says so', () => {
  assert.deepEqual(place([], req(), new Set()), { ok: false, reason: 'no hosts registered' });
});
