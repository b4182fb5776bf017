// VM networking on a host: one bridge the agent manages, with the host's
// address on it, and a tap per VM attached to it, so the host and the other
// VMs of the host reach each VM at the address the agent gives it (the guest
// init configures it from the config disk). Uses iproute2; needs root.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Subnet {
  /** e.g. 10.99.0.0 */
  base: number;
  prefix: number;
}

export function parseCidr(cidr: string): Subnet {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some(o => o > 255) || prefix < 8 || prefix > 30) throw new Error(`not a usable IPv4 CIDR: ${cidr}`);
  const addr = octets.reduce((a, o) => (a << 8) | o, 0) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (addr & mask) >>> 0, prefix };
}

export const ipString = (n: number): string => [24, 16, 8, 0].map(s => (n >>> s) & 255).join('.');

/** The host's address on the bridge: the subnet's first. */
export const gatewayOf = (s: Subnet): string => ipString(s.base + 1);

/** The lowest address of the subnet that is not the gateway, not broadcast and not taken. */
export function allocateIp(s: Subnet, taken: ReadonlySet<string>): string {
  const size = 2 ** (32 - s.prefix);
  for (let i = 2; i < size - 1; i++) {
    const ip = ipString(s.base + i);
    if (!taken.has(ip)) return ip;
  }
  throw new Error(`no free address left in ${ipString(s.base)}/${s.prefix}`);
}

/** A tap name (at most 15 characters) derived from the instance id. */
export const tapName = (instanceId: string): string =>
  `stap${createHash('sha256').update(instanceId).digest('hex').slice(0, 10)}`;

/** A stable, locally administered MAC for the instance. */
export function macOf(instanceId: string): string {
  const h = createHash('sha256').update(`mac:${instanceId}`).digest();
  return ['52', '54', ...[h[0], h[1], h[2], h[3]].map(b => b!.toString(16).padStart(2, '0'))].join(':');
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args);
  return stdout;
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await ip('link', 'show', 'dev', name);
    return true;
  } catch {
    return false;
  }
}

/** The bridge, up, with the gateway address; made once, left in place. */
export async function ensureBridge(bridge: string, s: Subnet): Promise<void> {
  if (!(await linkExists(bridge)))
    await ip('link', 'add', 'name', bridge, 'type', 'bridge').catch(async (err: unknown) => {
      if (!(await linkExists(bridge))) throw err; // another agent made it meanwhile
    });
  const addr = `${gatewayOf(s)}/${s.prefix}`;
  const shown = await ip('-4', 'addr', 'show', 'dev', bridge);
  if (!shown.includes(` ${addr} `)) await ip('addr', 'add', addr, 'dev', bridge).catch(() => undefined);
  await ip('link', 'set', bridge, 'up');
}

export async function createTap(tap: string, bridge: string): Promise<void> {
  if (await linkExists(tap)) await ip('link', 'del', tap);
  await ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
  await ip('link', 'set', tap, 'master', bridge);
  await ip('link', 'set', tap, 'up');
}

export async function deleteTap(tap: string): Promise<void> {
  if (await linkExists(tap)) await ip('link', 'del', tap).catch(() => undefined);
}

/**
 * Address leases, host-wide (several agents may share a bridge): one file per
 * address under `dir`, created exclusively, holding the instance id and the
 * instance's directory. A lease whose directory is gone (its agent's data was
 * wiped) is taken back.
 */
export class Leases {
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  lease(s: Subnet, instanceId: string, instanceDir: string): string {
    mkdirSync(this.dir, { recursive: true });
    const taken = new Set<string>();
    for (;;) {
      const held = readdirSync(this.dir).filter(ip => !this.stale(ip));
      const ip = allocateIp(s, new Set([...held, ...taken]));
      try {
        if (this.stale(ip)) rmSync(join(this.dir, ip), { force: true });
        writeFileSync(join(this.dir, ip), `${instanceId}\n${instanceDir}\n`, { flag: 'wx' });
        return ip;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        taken.add(ip); // taken meanwhile by another agent: the next one
      }
    }
  }

  private read(ip: string): [string, string] | undefined {
    try {
      const [id = '', dir = ''] = readFileSync(join(this.dir, ip), 'utf8').split('\n');
      return [id, dir];
    } catch {
      return undefined;
    }
  }

  private stale(ip: string): boolean {
    const l = this.read(ip);
    return l !== undefined && l[1] !== '' && !existsSync(l[1]);
  }

  /** Keeps an address across restarts of the same instance. */
  holds(ip: string, instanceId: string): boolean {
    return this.read(ip)?.[0] === instanceId;
  }

  release(ip: string, instanceId: string): void {
    if (this.holds(ip, instanceId)) rmSync(join(this.dir, ip), { force: true });
  }
}
