// The provisioning network on a Linux bridge: the host's addresses on it
// (IPv4 from the CIDR; an IPv6 ULA only so that router advertisements end
// iPXE's wait for IPv6 autoconfiguration), and dnsmasq as a supervised child
// for DHCP, router advertisements and TFTP (undionly.kpxe, or snponly.efi
// under UEFI, for PXE ROMs that are not iPXE). iPXE is sent to the boot server's /ipxe. Uses iproute2 and
// dnsmasq; needs root.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The IPv6 prefix of every provisioning network: link-local in effect, it only makes iPXE stop waiting. */
export const RA_ADDRESS = 'fd00:250::1/64';
/** PXE ROMs that are not iPXE get iPXE by TFTP from here (Debian's ipxe package). */
export const TFTP_ROOT = '/usr/lib/ipxe';

export interface Ipv4Net {
  /** the host's address on the bridge */
  address: string;
  prefix: number;
  /** the DHCP range: every other address of the subnet but network and broadcast */
  rangeStart: string;
  rangeEnd: string;
  netmask: string;
}

const toInt = (ip: string): number => ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
const toIp = (n: number): string => [24, 16, 8, 0].map(s => (n >>> s) & 255).join('.');

/** `172.30.250.1/24`: the host's address and prefix, and a DHCP range on the side of it with room. */
export function parseProvisioningCidr(cidr: string): Ipv4Net {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m || m.slice(1, 5).some(o => Number(o) > 255)) throw new Error(`not an IPv4 address with a prefix: ${cidr}`);
  const prefix = Number(m[5]);
  if (prefix < 8 || prefix > 29) throw new Error(`the provisioning network needs a prefix from 8 to 29: ${cidr}`);
  const address = toInt(m.slice(1, 5).join('.'));
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const base = (address & mask) >>> 0;
  const broadcast = (base | ~mask) >>> 0;
  if (address === base || address === broadcast) throw new Error(`${cidr} is the network's own or broadcast address`);
  const [start, end] = address - base <= broadcast - address ? [address + 1, broadcast - 1] : [base + 1, address - 1];
  return { address: toIp(address), prefix, rangeStart: toIp(start), rangeEnd: toIp(end), netmask: toIp(mask) };
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args);
  return stdout;
}

/** The bridge (made when missing), up, with the IPv4 address and the RA address. */
export async function bringUpBridge(bridge: string, net: Ipv4Net): Promise<void> {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge)) throw new Error(`not a network interface name: ${bridge}`);
  const exists = await ip('link', 'show', 'dev', bridge).then(
    () => true,
    () => false,
  );
  if (!exists) await ip('link', 'add', 'name', bridge, 'type', 'bridge');
  const v4 = `${net.address}/${net.prefix}`;
  if (!(await ip('-4', 'addr', 'show', 'dev', bridge)).includes(` ${v4} `)) await ip('addr', 'add', v4, 'dev', bridge);
  if (!(await ip('-6', 'addr', 'show', 'dev', bridge)).includes(` ${RA_ADDRESS} `))
    // nodad: usable at once, so the first RA goes out before iPXE asks.
    await ip('-6', 'addr', 'add', RA_ADDRESS, 'dev', bridge, 'nodad').catch(() => undefined); // IPv6 off: iPXE waits, still boots
  await ip('link', 'set', bridge, 'up');
}

export interface DnsmasqOptions {
  bridge: string;
  net: Ipv4Net;
  dataDir: string;
  /** where iPXE goes for its script: the boot server's /ipxe */
  ipxeUrl: string;
}

export function dnsmasqArgs(o: DnsmasqOptions): string[] {
  return [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--pid-file=',
    '--log-facility=-',
    '--port=0',
    `--interface=${o.bridge}`,
    '--except-interface=lo', // dnsmasq would serve TFTP on loopback too
    '--bind-interfaces',
    `--dhcp-range=${o.net.rangeStart},${o.net.rangeEnd},${o.net.netmask},1h`,
    `--dhcp-leasefile=${join(o.dataDir, 'dnsmasq.leases')}`,
    '--dhcp-authoritative',
    // No ping before offering a new address: it held every node's first boot
    // for 3 s. The network is the conductor's own and the range leaves the host out.
    '--no-ping',
    '--enable-ra',
    `--dhcp-range=${RA_ADDRESS.replace(/1\/64$/, '')},ra-only,64`,
    '--enable-tftp',
    `--tftp-root=${TFTP_ROOT}`,
    '--dhcp-match=set:ipxe,175',
    // UEFI x86-64 firmware (client architecture 7 or 9) gets the EFI build of iPXE.
    '--dhcp-match=set:efi64,option:client-arch,7',
    '--dhcp-match=set:efi64,option:client-arch,9',
    // No ProxyDHCP here: iPXE need not wait for one.
    '--dhcp-option=tag:ipxe,encap:175,176,1',
    '--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe',
    '--dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi',
    `--dhcp-boot=tag:ipxe,${o.ipxeUrl}`,
  ];
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** Whether `pid` runs (a zombie no one reaped does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Kills the dnsmasq a previous process of ours left on this bridge (killed
 * with -9, it could not stop its child), found by the pid file and checked by
 * its command line, so that a reused pid is never killed.
 */
export async function killStale(pidFile: string, bridge: string): Promise<number | null> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
  if (!argv[0]?.endsWith('dnsmasq') || !argv.includes(`--interface=${bridge}`)) return null;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return null;
  }
  for (let i = 0; i < 100 && running(pid); i++) await sleep(20);
  return pid;
}

/** dnsmasq, restarted when it dies (1 s, doubling to 30 s between tries). Its output goes to dnsmasq.log. */
export class Dnsmasq {
  private readonly opts: DnsmasqOptions;
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private backoffMs = 1000;
  private readonly pidFile: string;
  private readonly logFile: string;

  private constructor(opts: DnsmasqOptions) {
    this.opts = opts;
    this.pidFile = join(opts.dataDir, 'dnsmasq.pid');
    this.logFile = join(opts.dataDir, 'dnsmasq.log');
  }

  /** Resolves once dnsmasq has opened its DHCP and TFTP sockets; rejects with its words if it cannot start. */
  static async start(opts: DnsmasqOptions): Promise<Dnsmasq> {
    mkdirSync(opts.dataDir, { recursive: true });
    const d = new Dnsmasq(opts);
    await killStale(d.pidFile, opts.bridge);
    await d.spawnOnce();
    return d;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  private spawnOnce(): Promise<void> {
    const child = spawn('dnsmasq', dnsmasqArgs(this.opts), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    // A process that ends without stop() takes its dnsmasq along (a kill -9 cannot: the pid file is for that).
    const onExit = () => child.kill('SIGKILL');
    process.once('exit', onExit);
    child.once('exit', () => process.off('exit', onExit));
    const lines: string[] = [];
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      child.once('error', err => {
        if (!ready) reject(new Error(`dnsmasq did not start: ${err.message}`));
      });
      child.once('spawn', () => {
        if (child.pid) writeFileSync(this.pidFile, `${child.pid}\n`);
      });
      const rl = createInterface({ input: child.stderr! });
      rl.on('line', line => {
        writeFileSync(this.logFile, `${new Date().toISOString()} ${line}\n`, { flag: 'a' });
        if (lines.push(line) > 20) lines.shift();
        // Its last words on starting: every socket is open by then.
        if (!ready && /TFTP root is/.test(line)) {
          ready = true;
          this.backoffMs = 1000;
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = null;
        if (!ready) {
          ready = true;
          reject(new Error(`dnsmasq exited (${signal ?? code}): ${lines.slice(-3).join(' / ')}`));
          return;
        }
        if (this.stopping) return;
        writeFileSync(
          this.logFile,
          `${new Date().toISOString()} strata: dnsmasq exited (${signal ?? code}); restarting\n`,
          {
            flag: 'a',
          },
        );
        this.scheduleRestart();
      });
    });
  }

  private scheduleRestart(): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.spawnOnce().catch(() => {
        if (!this.stopping && !this.child) this.scheduleRestart();
      });
    }, delay);
    this.restartTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise(r => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    if (existsSync(this.pidFile)) rmSync(this.pidFile, { force: true });
  }
}
