import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseBmcUrl } from '../../../model/bmc-url.ts';
import { IpmiBmc } from './ipmi.ts';

// A stand-in ipmitool first on PATH: it records each command and answers
// power status with the state in a file, as a BMC would. While the file
// busy holds a number above 0 it fails that many calls as a busy BMC does;
// while a call runs, the file open exists (a second one open at once is
// recorded as overlap).
let dir: string;
let path: string | undefined;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-ipmi-'));
  writeFileSync(join(dir, 'power'), 'off');
  writeFileSync(
    join(dir, 'ipmitool'),
    `#!/bin/sh
d='${dir}'
while [ $# -gt 0 ] && [ "$1" != power ] && [ "$1" != chassis ]; do shift; done
echo "$*" >> "$d/calls"
if ! mkdir "$d/open" 2>/dev/null; then echo overlap >> "$d/overlaps"; fi
trap 'rmdir "$d/open" 2>/dev/null' EXIT
[ -e "$d/slow" ] && sleep 0.2
n=$(cat "$d/busy" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$d/busy"; echo 'IPMI Request Match NOT FOUND' >&2; echo 'Close Session command failed' >&2; exit 1; fi
case "$*" in
  'power status') echo "Chassis Power is $(cat "$d/power")" ;;
  'power on') echo on > "$d/power" ;;
  'power off') echo off > "$d/power" ;;
esac
`,
    { mode: 0o755 },
  );
  path = process.env.PATH;
  process.env.PATH = `${dir}:${path}`;
});

after(() => {
  process.env.PATH = path;
  rmSync(dir, { recursive: true, force: true });
});

const calls = () => readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');

test('setPower asks the BMC first, unless the caller says what the node was', async () => {
  const bmc = new IpmiBmc(parseBmcUrl('ipmi://admin:pw@127.0.0.1:6230'));
  await bmc.setPower('on');
  await bmc.setPower('on');
  await bmc.setPower('off', 'on');
  await bmc.setPower('off', 'off');
  assert.deepEqual(calls(), ['power status', 'power on', 'power status', 'power off']);
  assert.equal(readFileSync(join(dir, 'power'), 'utf8').trim(), 'off');
});

test('a call the BMC answers with a session it failed to close is made again', async () => {
  const bmc = new IpmiBmc(parseBmcUrl('ipmi://admin:pw@127.0.0.1:6230'));
  writeFileSync(join(dir, 'calls'), '');
  writeFileSync(join(dir, 'busy'), '1');
  assert.equal(await bmc.power(), readFileSync(join(dir, 'power'), 'utf8').trim());
  assert.deepEqual(calls(), ['power status', 'power status']);
});

test('a busy BMC is asked again past a few failures, within the retry budget', async () => {
  const bmc = new IpmiBmc(parseBmcUrl('ipmi://admin:pw@127.0.0.1:6230'));
  writeFileSync(join(dir, 'calls'), '');
  writeFileSync(join(dir, 'busy'), '4');
  assert.equal(await bmc.power(), readFileSync(join(dir, 'power'), 'utf8').trim());
  assert.equal(calls().length, 5);
});

test('requests to one BMC go one at a time, from any number of its users', async () => {
  const url = parseBmcUrl('ipmi://admin:pw@127.0.0.1:6230');
  writeFileSync(join(dir, 'calls'), '');
  writeFileSync(join(dir, 'overlaps'), '');
  writeFileSync(join(dir, 'slow'), '');
  try {
    await Promise.all([
      new IpmiBmc(url).power(),
      new IpmiBmc(url).setBootDevice('disk', true),
      new IpmiBmc(url).power(),
      new IpmiBmc(url).setPower('on', 'off'),
    ]);
  } finally {
    rmSync(join(dir, 'slow'));
  }
  assert.equal(calls().length, 4);
  assert.equal(readFileSync(join(dir, 'overlaps'), 'utf8'), '');
});
