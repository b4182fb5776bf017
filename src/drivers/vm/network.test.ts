import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { allocateIp, gatewayOf, Leases, macOf, parseCidr, tapName } from './network.ts';

test('subnets, gateways and the lowest free address', () => {
  const s = parseCidr('10.99.0.0/24');
  assert.equal(gatewayOf(s), '10.99.0.1');
  assert.equal(allocateIp(s, new Set()), '10.99.0.2');
  assert.equal(allocateIp(s, new Set(['10.99.0.2', '10.99.0.3'])), '10.99.0.4');
  assert.equal(gatewayOf(parseCidr('192.168.7.77/30')), '192.168.7.77');
  const tiny = parseCidr('10.0.0.0/30');
  assert.equal(allocateIp(tiny, new Set()), '10.0.0.2');
  assert.throws(() => allocateIp(tiny, new Set(['10.0.0.2'])), /no free address/);
  assert.throws(() => parseCidr('10.0.0.0'), /CIDR/);
  assert.throws(() => parseCidr('300.0.0.0/24'), /CIDR/);
});

test('tap names fit in 15 characters; MACs are stable and locally administered', () => {
  assert.ok(tapName('ins_01m86sp3k5cqf7k6kd8matz52d').length <= 15);
  assert.equal(macOf('a'), macOf('a'));
  assert.notEqual(macOf('a'), macOf('b'));
  assert.match(macOf('a'), /^52:54:([0-9a-f]{2}:){3}[0-9a-f]{2}$/);
});

test('leases are exclusive, kept by their holder, and released', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-leases-'));
  try {
    const l = new Leases(dir);
    const s = parseCidr('10.99.0.0/24');
    const a = l.lease(s, 'ins_a', dir);
    const b = l.lease(s, 'ins_b', dir);
    assert.deepEqual([a, b], ['10.99.0.2', '10.99.0.3']);
    assert.ok(l.holds(a, 'ins_a') && !l.holds(a, 'ins_b'));
    l.release(a, 'ins_b');
    assert.ok(l.holds(a, 'ins_a'), 'only the holder releases');
    l.release(a, 'ins_a');
    assert.equal(l.lease(s, 'ins_c', dir), '10.99.0.2');
    // A lease whose instance directory is gone is taken back.
    const d = l.lease(s, 'ins_d', join(dir, 'no-such-dir'));
    assert.equal(d, '10.99.0.4');
    assert.equal(l.lease(s, 'ins_e', dir), '10.99.0.4');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
