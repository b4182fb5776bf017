import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseBmcUrl } from '../../../model/bmc-url.ts';
import { IpmiBmc } from './ipmi.ts';

// A stand-in ipmitool first on PATH: it records each command and answers
// power status with the state in a file, as a BMC would.
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
if [ -e "$d/busy" ]; then rm "$d/busy"; echo 'Close Session command failed' >&2; exit 1; fi
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
  writeFileSync(join(dir, 'busy'), '');
  assert.equal(await bmc.power(), readFileSync(join(dir, 'power'), 'utf8').trim());
  assert.deepEqual(calls(), ['power status', 'power status']);
});
