// What the deploy ramdisk (guest/ramdisk-init) and the boot server say to
// each other: the ramdisk's hello (the node's hardware) and its done (how the
// task went), checked strictly since any machine on the provisioning network
// can send them; and the task, written so that the ramdisk's busybox sed
// reads it (no JSON escapes in any value).
import { type Static, Type } from 'typebox';
import { Compile } from 'typebox/compile';
import type { Hardware, RamdiskTask, TaskResult } from '../types.ts';

const Closed = { additionalProperties: false } as const;
const DeviceName = Type.String({ pattern: '^[A-Za-z0-9._:@-]{1,32}$' });

export const HardwareSchema = Type.Object(
  {
    cpus: Type.Integer({ minimum: 0, maximum: 65536 }),
    memoryMib: Type.Integer({ minimum: 0, maximum: 2 ** 40 }),
    disks: Type.Array(
      Type.Object(
        { name: DeviceName, sizeBytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) },
        Closed,
      ),
      { maxItems: 256 },
    ),
    nics: Type.Array(
      Type.Object({ name: DeviceName, mac: Type.String({ pattern: '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$' }) }, Closed),
      { maxItems: 64 },
    ),
  },
  Closed,
);

export const TaskResultSchema = Type.Object({ ok: Type.Boolean(), message: Type.String({ maxLength: 2000 }) }, Closed);

const hardwareValidator = Compile(HardwareSchema);
const resultValidator = Compile(TaskResultSchema);

/** The largest body the ramdisk may send. */
export const MAX_BODY = 64 * 1024;

function firstError(errors: Iterable<{ instancePath: string; message: string }>): string {
  for (const e of errors) return `${e.instancePath || 'body'} ${e.message}`;
  return 'invalid';
}

/** The hello's body as Hardware (MACs in lower case), or why not. */
export function parseHardware(value: unknown): Hardware | string {
  if (!hardwareValidator.Check(value)) return firstError(hardwareValidator.Errors(value));
  const hw = value as Static<typeof HardwareSchema>;
  return {
    cpus: hw.cpus,
    memoryMib: hw.memoryMib,
    disks: hw.disks.map(d => ({ name: d.name, sizeBytes: d.sizeBytes })),
    nics: hw.nics.map(n => ({ name: n.name, mac: n.mac.toLowerCase() })),
  };
}

export function parseTaskResult(value: unknown): TaskResult | string {
  if (!resultValidator.Check(value)) return firstError(resultValidator.Errors(value));
  const r = value as Static<typeof TaskResultSchema>;
  return { ok: r.ok, message: r.message };
}

/** A MAC in the form the server keys on (lower case, colons), or null when it is none. */
export function normalizeMac(mac: string): string | null {
  const hex = mac.toLowerCase().replace(/[-:]/g, '');
  if (!/^[0-9a-f]{12}$/.test(hex)) return null;
  return hex.match(/../g)!.join(':');
}

/**
 * A URL the ramdisk can be given: http(s), no characters JSON or the kernel
 * command line would need to escape (no quotes, backslashes, spaces or
 * control characters), bounded.
 */
export function checkRamdiskUrl(url: string, what: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${what} is not a URL: ${JSON.stringify(url.slice(0, 200))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${what} must be an http or https URL`);
  if (url.length > 2000 || !/^[A-Za-z0-9._~:/?#[\]@!$&'()*+,;=%-]+$/.test(url))
    throw new Error(`${what} has characters the ramdisk cannot take: ${JSON.stringify(url.slice(0, 200))}`);
}

/** The task as the ramdisk reads it. */
export function taskJson(task: RamdiskTask): string {
  if (task.action === 'deploy') {
    checkRamdiskUrl(task.imageUrl, 'the image URL');
    if (task.configDriveUrl !== null) checkRamdiskUrl(task.configDriveUrl, 'the config drive URL');
    return JSON.stringify({ action: 'deploy', imageUrl: task.imageUrl, configDriveUrl: task.configDriveUrl ?? '' });
  }
  return JSON.stringify({ action: task.action });
}
