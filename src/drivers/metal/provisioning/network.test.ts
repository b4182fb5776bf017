// The provisioning network's pure parts, and the stale-dnsmasq check.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { dnsmasqArgs, killStale, parseProvisioningCidr } from './network.ts';
import { taskJson } from './protocol.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-provnet-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the DHCP range is the side of the subnet with room, never the host or broadcast address', () => {
  assert.deepEqual(parseProvisioningCidr('172.30.250.1/24'), {
    address: '172.30.250.1',
    prefix: 24,
    rangeStart: '172.30.250.2',
    rangeEnd: '172.30.250.254',
    netmask: '255.255.255.0',
  });
  const high = parseProvisioningCidr('10.0.0.254/24');
  assert.equal(high.rangeStart, '10.0.0.1');
  assert.equal(high.rangeEnd, '10.0.0.253');
  for (const bad of ['172.30.250.0/24', '172.30.250.255/24', '172.30.250.1', '300.1.1.1/24', '10.0.0.1/30', 'x/24'])
    assert.throws(() => parseProvisioningCidr(bad), bad);
});

test('dnsmasq serves DHCP and RA on the bridge only, no DNS, and sends iPXE to the boot server', () => {
  const args = dnsmasqArgs({
    bridge: 'br-prov',
    net: parseProvisioningCidr('172.30.250.1/24'),
    dataDir: '/data',
    ipxeUrl: 'http://172.30.250.1:8080/ipxe',
  });
  for (const a of [
    '--keep-in-foreground',
    '--port=0',
    '--interface=br-prov',
    '--except-interface=lo',
    '--bind-interfaces',
    '--conf-file=/dev/null',
    '--dhcp-range=172.30.250.2,172.30.250.254,255.255.255.0,1h',
    '--dhcp-leasefile=/data/dnsmasq.leases',
    '--enable-ra',
    '--dhcp-range=fd00:250::,ra-only,64',
    '--tftp-root=/usr/lib/ipxe',
    '--dhcp-match=set:ipxe,175',
    '--dhcp-option=tag:ipxe,encap:175,176,1',
    '--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe',
    '--dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi',
    '--dhcp-boot=tag:ipxe,http://172.30.250.1:8080/ipxe',
  ])
    assert.ok(args.includes(a), a);
});

test('a stale dnsmasq of this bridge is killed; a process that only has its pid is not', async () => {
  const pidFile = join(dir, 'dnsmasq.pid');
  // A shell reading forever (builtins only: no child left behind), named as a dnsmasq would be.
  const fakeDnsmasq = join(dir, 'dnsmasq');
  symlinkSync('/bin/sh', fakeDnsmasq);
  const keep = ['-c', 'while read -r x; do :; done'];
  const stale = spawn(fakeDnsmasq, [...keep, '--interface=stmtest0'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const other = spawn('/bin/sh', [...keep, '--interface=stmtest0'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const otherBridge = spawn(fakeDnsmasq, [...keep, '--interface=stmtest1'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = (c: typeof stale) => new Promise(r => c.once('exit', r));
  try {
    await Promise.all([stale, other, otherBridge].map(c => new Promise(r => c.once('spawn', r))));
    assert.ok(readFileSync(`/proc/${stale.pid}/cmdline`, 'utf8').startsWith(`${fakeDnsmasq}\0`));
    writeFileSync(pidFile, `${other.pid}\n`);
    assert.equal(await killStale(pidFile, 'stmtest0'), null);
    writeFileSync(pidFile, `${otherBridge.pid}\n`);
    assert.equal(await killStale(pidFile, 'stmtest0'), null);
    writeFileSync(pidFile, `${stale.pid}\n`);
    const gone = exited(stale);
    assert.equal(await killStale(pidFile, 'stmtest0'), stale.pid);
    await gone;
    assert.equal(other.exitCode, null);
    writeFileSync(pidFile, 'garbage');
    assert.equal(await killStale(pidFile, 'stmtest0'), null);
  } finally {
    for (const c of [stale, other, otherBridge]) c.kill('SIGKILL');
  }
});

test('a task the ramdisk cannot read safely is refused', () => {
  assert.equal(taskJson({ action: 'clean' }), '{"action":"clean"}');
  for (const imageUrl of ['http://x/a"b', 'http://x/a b', 'http://x/a\\b', 'file:///etc/passwd', 'nope'])
    assert.throws(() => taskJson({ action: 'deploy', imageUrl, configDriveUrl: null }), imageUrl);
  assert.throws(() => taskJson({ action: 'deploy', imageUrl: 'http://x/a', configDriveUrl: 'http://x/"' }));
});
