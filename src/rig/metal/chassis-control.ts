// The chassis program of OpenIPMI's simulator (lan.conf `chassis_control`):
//   chassis-control.ts MACHINE_DIR 0x20 get power|boot
//   chassis-control.ts MACHINE_DIR 0x20 set power 1|0 | reset 1 | shutdown 1 | boot DEVICE
// ipmi_sim waits for it and ipmitool resends after a second, so a slow power
// on runs twice: every action here is idempotent (see Machine.powerOn).
import { type BootOverride, Machine } from './machine.ts';

/** What ipmi_sim passes for `chassis bootdev`: disk arrives as "default". */
const FROM_IPMI: Record<string, BootOverride['device']> = { pxe: 'pxe', default: 'disk', cdrom: 'cd' };
const TO_IPMI: Record<BootOverride['device'], string> = { pxe: 'pxe', disk: 'default', cd: 'cdrom', none: 'none' };

async function main(argv: string[]): Promise<string | undefined> {
  const [dir, , verb, what, value] = argv;
  if (!dir) throw new Error('usage: chassis-control MACHINE_DIR DEVICE get|set WHAT [VALUE]');
  const machine = Machine.load(dir);
  if (verb === 'get' && what === 'power') return `power:${machine.power() === 'on' ? 1 : 0}`;
  if (verb === 'get' && what === 'boot') return `boot:${TO_IPMI[machine.boot().device]}`;
  if (verb !== 'set') throw new Error(`unknown request: ${argv.slice(1).join(' ')}`);
  if (what === 'power') await (value === '1' ? machine.powerOn() : machine.powerOff());
  else if (what === 'reset') await machine.reset();
  else if (what === 'shutdown') await machine.powerOff();
  // ipmi_sim does not pass "persistent": IPMI's boot device is kept until changed.
  else if (what === 'boot') machine.setBoot({ device: FROM_IPMI[value ?? ''] ?? 'none', persistent: true });
  else throw new Error(`unknown request: ${argv.slice(1).join(' ')}`);
  return undefined;
}

main(process.argv.slice(2)).then(
  out => {
    if (out) process.stdout.write(`${out}\n`);
  },
  (e: Error) => {
    process.stderr.write(`chassis-control: ${e.message}\n`);
    process.exitCode = 1;
  },
);
