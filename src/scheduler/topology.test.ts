import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { domainOf, physicalHosts, type TopologyHost } from './topology.ts';

const host = (id: string, parentHostId: string | null, rack = '', zone = ''): TopologyHost => ({
  id,
  parentHostId,
  topology: { region: 'eu', zone, rack },
});

test('a nested host resolves to the physical server under it, through any depth', () => {
  const hosts = [
    host('p1', null, 'r1', 'a'),
    host('vm1', 'p1'),
    host('vm2', 'vm1'),
    host('vm3', 'vm2'),
    host('p2', null, 'r1', 'b'),
  ];
  const phys = physicalHosts(hosts);
  assert.deepEqual(Object.fromEntries(phys), { p1: 'p1', vm1: 'p1', vm2: 'p1', vm3: 'p1', p2: 'p2' });
  const byId = new Map(hosts.map(h => [h.id, h]));
  const d = (id: string, level: Parameters<typeof domainOf>[1]) => domainOf(byId.get(id)!, level, phys, byId);
  assert.equal(d('vm3', 'physical-host'), d('p1', 'physical-host'));
  assert.notEqual(d('vm3', 'host'), d('p1', 'host'));
  assert.equal(d('vm3', 'rack'), 'r:eu/a/r1', 'a VM host sits in its server rack');
  assert.notEqual(d('p1', 'rack'), d('p2', 'rack'), 'rack r1 of zone a is not rack r1 of zone b');
});

test('broken records cannot hang the walk: unknown parents and cycles end it', () => {
  const phys = physicalHosts([host('x', 'missing'), host('c1', 'c2'), host('c2', 'c1')]);
  assert.equal(phys.get('x'), 'x');
  assert.ok(phys.get('c1') === 'c1' || phys.get('c1') === 'c2');
});

test('servers without topology are their own domain at every level', () => {
  const hosts = [host('p1', null), host('p2', null)];
  const phys = physicalHosts(hosts);
  const byId = new Map(hosts.map(h => [h.id, h]));
  assert.notEqual(domainOf(hosts[0]!, 'zone', phys, byId), domainOf(hosts[1]!, 'zone', phys, byId));
});
