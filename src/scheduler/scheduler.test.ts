import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { Scheduler, type GroupRule, type Request, type SchedHost } from './scheduler.ts';

const host = (id: string, o: Partial<SchedHost> = {}): SchedHost => ({
  id,
  parentHostId: null,
  topology: { region: 'eu', zone: 'a', rack: 'r1' },
  state: 'ready',
  drivers: ['container', 'vm'],
  pool: null,
  labels: {},
  allocatable: { vcpus: 8, memoryMib: 8192, diskGib: 100 },
  free: { vcpus: 8, memoryMib: 8192, diskGib: 100 },
  ...o,
});
const req = (o: Partial<Request> = {}): Request => ({
  projectId: 'p',
  kind: 'container',
  vcpus: 1,
  memoryMib: 512,
  diskGib: 0,
  constraints: [],
  ...o,
});
const anti = (level: GroupRule['level'], strength: GroupRule['strength'] = 'hard'): GroupRule => ({
  id: 'g',
  policy: 'anti-affinity',
  strength,
  level,
});

test("feasibility: state, driver, pool, constraints and each resource, each refusal counted; other projects' dedicated hosts neither counted nor named", () => {
  const s = new Scheduler(
    [
      host('down', { state: 'down' }),
      host('novm', { drivers: ['container'] }),
      host('theirs', { pool: 'other' }),
      host('ssd', { labels: { disk: 'ssd' } }),
      host('small', { free: { vcpus: 8, memoryMib: 256, diskGib: 100 } }),
    ],
    new Set(),
  );
  const r = s.place(req({ kind: 'vm', constraints: [{ key: 'disk', op: '==', value: 'nvme' }] }));
  assert.deepEqual(r, { ok: false, reason: '4 hosts: 2 constraint disk == nvme, 1 down, 1 lack driver vm' });
  const big = s.place(req({ memoryMib: 9000 }));
  assert.deepEqual(big, { ok: false, reason: '4 hosts: 3 lack memory, 1 down' });
  assert.equal(s.rank(req({ memoryMib: 9000 })).refusals, '4 hosts: 3 lack memory, 1 down');
  // The project that owns the dedicated host sees it, and why it cannot take this.
  assert.deepEqual(s.place(req({ projectId: 'other', memoryMib: 9000 })), {
    ok: false,
    reason: '5 hosts: 4 lack memory, 1 down',
  });
  assert.deepEqual(s.place(req({ constraints: [{ key: 'disk', op: '==', value: 'ssd' }] })).ok, true);
});

test('bin-pack fills the fuller host; spread picks the emptier', () => {
  const hosts = [host('full', { free: { vcpus: 8, memoryMib: 1024, diskGib: 100 } }), host('empty')];
  assert.equal((new Scheduler(hosts, new Set()).place(req()) as { hostId: string }).hostId, 'full');
  assert.equal(
    (new Scheduler(hosts, new Set()).place(req({ strategy: 'spread' })) as { hostId: string }).hostId,
    'empty',
  );
});

test('hard anti-affinity at the physical-host level holds through nested VM hosts', () => {
  // Two VM hosts on server p1, one on p2.
  const hosts = [
    host('p1', { drivers: ['vm'] }),
    host('vm-a', { parentHostId: 'p1' }),
    host('vm-b', { parentHostId: 'p1' }),
    host('p2', { drivers: ['vm'] }),
    host('vm-c', { parentHostId: 'p2' }),
  ];
  const s = new Scheduler(hosts, new Set());
  const r = req({ groups: [anti('physical-host')] });
  const first = s.place(r);
  assert.ok(first.ok);
  s.commit(first.hostId, r);
  const second = s.place(r);
  assert.ok(second.ok);
  s.commit(second.hostId, r);
  const servers = new Set([first.hostId, second.hostId].map(h => (h === 'vm-c' ? 'p2' : 'p1')));
  assert.equal(servers.size, 2, `${first.hostId} and ${second.hostId} share a server`);
  const third = s.place(r);
  assert.deepEqual(third, { ok: false, reason: '5 hosts: 3 anti-affinity physical-host, 2 lack driver container' });
});

test('hard affinity follows the first member; soft rules only lean', () => {
  const hosts = [
    host('h1', { topology: { region: 'eu', zone: 'a', rack: 'r1' } }),
    host('h2', { topology: { region: 'eu', zone: 'b', rack: 'r1' } }),
  ];
  const s = new Scheduler(hosts, new Set());
  s.addMember('g', 'h2');
  const aff: GroupRule = { id: 'g', policy: 'affinity', strength: 'hard', level: 'zone' };
  assert.equal((s.place(req({ groups: [aff] })) as { hostId: string }).hostId, 'h2');
  const softAnti = anti('zone', 'soft');
  assert.equal((s.place(req({ groups: [softAnti] })) as { hostId: string }).hostId, 'h1');
  // Soft anti-affinity still places when every domain has a member.
  s.addMember('g', 'h1');
  assert.equal(s.place(req({ groups: [softAnti] })).ok, true);
});

test('spread with a max skew keeps zones level', () => {
  const hosts = ['a', 'b', 'c'].flatMap(z => [
    host(`${z}1`, { topology: { region: 'eu', zone: z, rack: '' } }),
    host(`${z}2`, { topology: { region: 'eu', zone: z, rack: '' } }),
  ]);
  const s = new Scheduler(hosts, new Set());
  const r = req({ spread: { groupId: 'web', level: 'zone', maxSkew: 1 } });
  const perZone = new Map<string, number>();
  for (let i = 0; i < 9; i++) {
    const o = s.place(r);
    assert.ok(o.ok);
    s.commit(o.hostId, r);
    const z = o.hostId[0]!;
    perZone.set(z, (perZone.get(z) ?? 0) + 1);
    const counts = [...['a', 'b', 'c'].map(x => perZone.get(x) ?? 0)];
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `skew after ${i + 1}: ${counts}`);
  }
});

test('fifty members of a hard physical-host anti-affinity group on fifty servers: all placed apart; the fifty-first refused', () => {
  const hosts = Array.from({ length: 50 }, (_, i) => host(`p${i}`));
  const s = new Scheduler(hosts, new Set());
  const r = req({ groups: [anti('physical-host')] });
  const used = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const o = s.place(r);
    assert.ok(o.ok, `member ${i}: ${JSON.stringify(o)}`);
    assert.ok(!used.has(o.hostId));
    used.add(o.hostId);
    s.commit(o.hostId, r);
  }
  assert.deepEqual(s.place(r), { ok: false, reason: '50 hosts: 50 anti-affinity physical-host' });
});

// Random clusters of servers with VM hosts nested on some, random requests:
// whatever is placed fits, hard anti-affinity holds at the physical level, and
// every refusal comes with an explanation naming every host.
test('property: no over-commit, no group violation, every refusal explained', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.array(fc.integer({ min: 0, max: 11 }), { maxLength: 12 }),
      fc.array(
        fc.record({
          memoryMib: fc.integer({ min: 64, max: 4096 }),
          vcpus: fc.integer({ min: 1, max: 4 }),
          grouped: fc.boolean(),
        }),
        { maxLength: 40 },
      ),
      (servers, nestOn, requests) => {
        const hosts: SchedHost[] = Array.from({ length: servers }, (_, i) =>
          host(`p${i}`, { topology: { region: 'eu', zone: `z${i % 3}`, rack: `r${i % 4}` } }),
        );
        nestOn.forEach((p, i) => {
          if (p < servers)
            hosts.push(
              host(`v${i}`, {
                parentHostId: `p${p}`,
                allocatable: { vcpus: 2, memoryMib: 2048, diskGib: 10 },
                free: { vcpus: 2, memoryMib: 2048, diskGib: 10 },
              }),
            );
        });
        const physOf = (id: string) => (id.startsWith('v') ? `p${nestOn[Number(id.slice(1))]}` : id);
        const s = new Scheduler(hosts, new Set());
        const groupServers = new Set<string>();
        // Usage recomputed from the placements alone, so a scheduler whose own free
        // figures went wrong cannot vouch for itself.
        const used = new Map<string, { vcpus: number; memoryMib: number }>();
        for (const q of requests) {
          const r = req({ memoryMib: q.memoryMib, vcpus: q.vcpus, groups: q.grouped ? [anti('physical-host')] : [] });
          const o = s.place(r);
          if (!o.ok) {
            assert.match(o.reason, new RegExp(`^${hosts.length} hosts?: `));
            const counted = [...o.reason.matchAll(/(\d+) [a-z]/g)].slice(1).reduce((n, m) => n + Number(m[1]), 0);
            assert.equal(counted, hosts.length, o.reason);
            continue;
          }
          s.commit(o.hostId, r);
          const u = used.get(o.hostId) ?? { vcpus: 0, memoryMib: 0 };
          u.vcpus += r.vcpus;
          u.memoryMib += r.memoryMib;
          used.set(o.hostId, u);
          const cap = hosts.find(h => h.id === o.hostId)!.free;
          assert.ok(u.memoryMib <= cap.memoryMib && u.vcpus <= cap.vcpus, `over-committed ${o.hostId}`);
          if (q.grouped) {
            const p = physOf(o.hostId);
            assert.ok(!groupServers.has(p), `two members on ${p}`);
            groupServers.add(p);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('topology constraints, and dedicated pools keep other projects out and their project in', () => {
  const zoned = [
    host('a', { labels: { gpu: 'yes' } }),
    host('b', { topology: { region: 'eu', zone: 'b', rack: 'x' } }),
  ];
  const on = (hosts: SchedHost[], r: Request, pools = new Set<string>()) => new Scheduler(hosts, pools).place(r);
  assert.equal((on(zoned, req({ constraints: [{ key: 'gpu', op: 'exists' }] })) as { hostId: string }).hostId, 'a');
  assert.equal(
    (on(zoned, req({ constraints: [{ key: 'topology.zone', op: '==', value: 'b' }] })) as { hostId: string }).hostId,
    'b',
  );
  assert.equal(
    (on(zoned, req({ constraints: [{ key: 'topology.rack', op: '!=', value: 'r1' }] })) as { hostId: string }).hostId,
    'b',
  );
  assert.equal(
    on(
      zoned,
      req({
        constraints: [
          { key: 'gpu', op: 'not-exists' },
          { key: 'topology.zone', op: '==', value: 'a' },
        ],
      }),
    ).ok,
    false,
  );
  const pools = [host('shared'), host('mine', { pool: 'p1' }), host('theirs', { pool: 'p2' })];
  assert.equal((on(pools, req({ projectId: 'p1' }), new Set(['p1'])) as { hostId: string }).hostId, 'mine');
  assert.equal((on(pools, req({ projectId: 'p3' }), new Set(['p1', 'p2'])) as { hostId: string }).hostId, 'shared');
  assert.deepEqual(on(pools.slice(0, 1), req({ projectId: 'p1' }), new Set(['p1'])), {
    ok: false,
    reason: '1 host: 1 shared pool (project has dedicated hosts)',
  });
  assert.deepEqual(on([], req()), { ok: false, reason: 'no hosts available to this project' });
});
