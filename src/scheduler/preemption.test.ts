import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Candidate, choosePreemption, victimsOn } from './preemption.ts';
import { type Held, type Request, type SchedHost, Scheduler } from './scheduler.ts';

/** A host of 4 vCPUs and 4096 MiB with `used` of it taken. */
const host = (id: string, used: { vcpus: number; memoryMib: number }, o: Partial<SchedHost> = {}): SchedHost => ({
  id,
  parentHostId: null,
  topology: { region: 'eu', zone: 'a', rack: id },
  state: 'ready',
  drivers: ['container'],
  pool: null,
  labels: {},
  allocatable: { vcpus: 4, memoryMib: 4096, diskGib: 100 },
  free: { vcpus: 4 - used.vcpus, memoryMib: 4096 - used.memoryMib, diskGib: 100 },
  ...o,
});
const req = (o: Partial<Request> = {}): Request => ({
  projectId: 'p',
  kind: 'container',
  vcpus: 1,
  memoryMib: 1024,
  diskGib: 0,
  constraints: [],
  ...o,
});
let seq = 0;
const cand = (id: string, hostId: string, priority: number, o: Partial<Candidate> = {}): Candidate => ({
  id,
  hostId,
  priority,
  vcpus: 1,
  memoryMib: 1024,
  diskGib: 0,
  groups: [],
  createdAt: `2026-01-01T00:00:${String(seq++ % 60).padStart(2, '0')}Z`,
  ...o,
});

test('the lowest priorities go first, and no more of them than the room needs', () => {
  const s = new Scheduler([host('h', { vcpus: 4, memoryMib: 4096 })], new Set());
  const cs = [cand('p5', 'h', 5), cand('p-3', 'h', -3), cand('p0', 'h', 0), cand('p-1', 'h', -1)];
  assert.deepEqual(choosePreemption(s, req(), 10, cs), { hostId: 'h', victims: ['p-3'] });
  assert.deepEqual(choosePreemption(s, req({ vcpus: 2, memoryMib: 2048 }), 10, cs), {
    hostId: 'h',
    victims: ['p-3', 'p-1'],
  });
  // The snapshot is as it was.
  assert.equal(s.freeOf('h')!.vcpus, 0);
  assert.equal(s.freeOf('h')!.memoryMib, 0);
});

test('never an instance of equal or higher priority', () => {
  const s = new Scheduler([host('h', { vcpus: 4, memoryMib: 4096 })], new Set());
  const cs = [cand('a', 'h', 10), cand('b', 'h', 11), cand('c', 'h', 10), cand('d', 'h', 9)];
  assert.deepEqual(choosePreemption(s, req(), 10, cs), { hostId: 'h', victims: ['d'] });
  assert.equal(choosePreemption(s, req({ vcpus: 2 }), 10, cs), null);
});

test('one large victim rather than several small ones of the same priority; victims given back when not needed', () => {
  const s = new Scheduler([host('h', { vcpus: 4, memoryMib: 4096 })], new Set());
  const cs = [
    cand('s1', 'h', 0, { memoryMib: 512 }),
    cand('s2', 'h', 0, { memoryMib: 512 }),
    cand('big', 'h', 0, { vcpus: 2, memoryMib: 2048 }),
    cand('s3', 'h', 0, { memoryMib: 1024 }),
  ];
  assert.deepEqual(choosePreemption(s, req({ memoryMib: 2048 }), 1, cs), { hostId: 'h', victims: ['big'] });
  // A lower priority first, even when a larger one of higher priority would do alone; the spare is given back.
  const low = [cand('low', 'h', -5, { memoryMib: 512 }), ...cs];
  assert.deepEqual(
    victimsOn(s, 'h', req({ memoryMib: 1024 }), low)?.map(c => c.id),
    ['big'],
  );
  assert.deepEqual(
    victimsOn(s, 'h', req({ memoryMib: 512 }), low)?.map(c => c.id),
    ['low'],
  );
});

test('the host whose victims matter least wins, then the one with fewest', () => {
  const s = new Scheduler(
    [
      host('a', { vcpus: 4, memoryMib: 4096 }),
      host('b', { vcpus: 4, memoryMib: 4096 }),
      host('c', { vcpus: 4, memoryMib: 4096 }),
    ],
    new Set(),
  );
  const cs = [
    cand('a1', 'a', 3, { memoryMib: 2048 }),
    cand('b1', 'b', 1, { memoryMib: 512 }),
    cand('b2', 'b', 1, { memoryMib: 512 }),
    cand('c1', 'c', 1, { memoryMib: 512 }),
    cand('c2', 'c', 1, { memoryMib: 256 }),
    cand('c3', 'c', 0, { memoryMib: 256, vcpus: 0 }),
  ];
  // a needs one victim of priority 3; b two of priority 1; c three of priority 1 at most.
  const p = choosePreemption(s, req({ memoryMib: 1024, vcpus: 1 }), 5, cs);
  assert.equal(p?.hostId, 'b');
  assert.deepEqual([...p.victims].sort(), ['b1', 'b2']);
  assert.deepEqual(victimsOn(s, 'c', req({ memoryMib: 1024, vcpus: 1 }), cs.slice(3))?.length, 3);
});

test("another project's dedicated host, a host down, a missing driver or a constraint: no victims there", () => {
  const s = new Scheduler(
    [
      host('theirs', { vcpus: 4, memoryMib: 4096 }, { pool: 'q' }),
      host('down', { vcpus: 4, memoryMib: 4096 }, { state: 'down' }),
      host('vmonly', { vcpus: 4, memoryMib: 4096 }, { drivers: ['vm'] }),
      host('plain', { vcpus: 4, memoryMib: 4096 }),
    ],
    new Set(['q']),
  );
  const cs = ['theirs', 'down', 'vmonly', 'plain'].map(h => cand(`${h}-x`, h, -10));
  assert.equal(choosePreemption(s, req({ kind: 'vm' }), 0, cs)?.hostId, 'vmonly');
  assert.deepEqual(
    choosePreemption(s, req({ constraints: [{ key: 'topology.rack', op: '==', value: 'plain' }] }), 0, cs)?.hostId,
    'plain',
  );
  assert.equal(
    choosePreemption(s, req({ constraints: [{ key: 'topology.rack', op: '==', value: 'vmonly' }] }), 0, cs),
    null,
  );
  // Their own project preempts on its dedicated host.
  assert.deepEqual(choosePreemption(s, req({ projectId: 'q' }), 0, cs), { hostId: 'theirs', victims: ['theirs-x'] });
  // A whole-host request preempts nothing.
  assert.equal(choosePreemption(s, req({ whole: true }), 0, cs), null);
});

test('hard anti-affinity: the member in the way is a victim only if it is of lower priority, and evaluated as gone', () => {
  const g = { id: 'g', policy: 'anti-affinity' as const, strength: 'hard' as const, level: 'host' as const };
  const hosts = [host('a', { vcpus: 1, memoryMib: 1024 }), host('b', { vcpus: 1, memoryMib: 1024 })];
  const s = new Scheduler(hosts, new Set());
  s.addMember('g', 'a');
  s.addMember('g', 'b');
  // Room on both, but each holds a member of the group.
  const r = req({ vcpus: 0, memoryMib: 0, groups: [g] });
  assert.equal(s.place(r).ok, false);
  const cs = [
    cand('a-member', 'a', 5, { groups: ['g'], vcpus: 1 }),
    cand('b-other', 'b', -5, { memoryMib: 0 }),
    cand('b-member', 'b', 2, { groups: ['g'], memoryMib: 0 }),
  ];
  // On b, the low-priority non-member does not help: only the member is taken.
  assert.deepEqual(choosePreemption(s, r, 3, cs), { hostId: 'b', victims: ['b-member'] });
  // At priority 2 neither member may go.
  assert.equal(choosePreemption(s, r, 2, cs), null);
  // The snapshot still counts both members.
  assert.equal(s.place(r).ok, false);
});

test('anti-affinity at the rack level is not cured by preempting on one host of the rack', () => {
  const g = { id: 'g', policy: 'anti-affinity' as const, strength: 'hard' as const, level: 'rack' as const };
  const s = new Scheduler(
    [
      host('a1', { vcpus: 4, memoryMib: 4096 }, { topology: { region: 'eu', zone: 'a', rack: 'r' } }),
      host('a2', { vcpus: 0, memoryMib: 0 }, { topology: { region: 'eu', zone: 'a', rack: 'r' } }),
    ],
    new Set(),
  );
  s.addMember('g', 'a2');
  assert.equal(choosePreemption(s, req({ groups: [g] }), 5, [cand('x', 'a1', 0)]), null);
});

test('property: the victims chosen let the host take the request, are all of lower priority, and none can be spared', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          host: fc.integer({ min: 0, max: 2 }),
          priority: fc.integer({ min: -3, max: 3 }),
          vcpus: fc.integer({ min: 0, max: 2 }),
          memoryMib: fc.integer({ min: 0, max: 2048 }),
        }),
        { maxLength: 12 },
      ),
      fc.integer({ min: -3, max: 4 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 256, max: 4096 }),
      (specs, priority, vcpus, memoryMib) => {
        const used = [0, 1, 2].map(() => ({ vcpus: 0, memoryMib: 0 }));
        const cs: Candidate[] = [];
        specs.forEach((x, i) => {
          const u = used[x.host]!;
          if (u.vcpus + x.vcpus > 4 || u.memoryMib + x.memoryMib > 4096) return;
          u.vcpus += x.vcpus;
          u.memoryMib += x.memoryMib;
          cs.push(cand(`c${i}`, `h${x.host}`, x.priority, { vcpus: x.vcpus, memoryMib: x.memoryMib }));
        });
        const s = new Scheduler(
          used.map((u, i) => host(`h${i}`, u)),
          new Set(),
        );
        const r = req({ vcpus, memoryMib });
        // Preemption is for a request that fits nowhere.
        if (s.place(r).ok) return;
        const p = choosePreemption(s, r, priority, cs);
        if (!p) {
          // Nowhere would do: not even every lower-priority instance of a host gone.
          for (let h = 0; h < 3; h++) {
            const all: Held[] = cs.filter(c => c.hostId === `h${h}` && c.priority < priority);
            assert.notEqual(s.rejectWithout(`h${h}`, r, all), null);
          }
          return;
        }
        const victims = p.victims.map(id => cs.find(c => c.id === id)!);
        assert.ok(victims.length > 0);
        assert.ok(victims.every(v => v.priority < priority && v.hostId === p.hostId));
        assert.equal(s.rejectWithout(p.hostId, r, victims), null);
        for (const v of victims)
          assert.notEqual(
            s.rejectWithout(
              p.hostId,
              r,
              victims.filter(x => x !== v),
            ),
            null,
          );
      },
    ),
  );
});
