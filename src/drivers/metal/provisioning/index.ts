// A provisioning network: the bridge's addresses, dnsmasq, and the boot
// server, for the conductor to arm boots of the deploy ramdisk on its nodes
// (by network boot, or by virtual media) and serve them files. Armed boots
// live in memory only: a conductor that restarts arms them again.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir } from '../../../lib/private-dir.ts';
import type { BootSession, RamdiskTask } from '../types.ts';
import { BootServer, FileTable, RAMDISK_ARGS } from './boot-server.ts';
import { buildDeployIso } from './media-iso.ts';
import { bringUpBridge, Dnsmasq, parseProvisioningCidr } from './network.ts';
import { taskJson } from './protocol.ts';
import { SessionRegistry } from './sessions.ts';

export interface ProvisioningNetworkOptions {
  /** dnsmasq's pid, leases and log, and the media ISOs, live here. */
  dataDir: string;
  /** The Linux bridge the nodes' provisioning NICs are on (made when missing). */
  bridge: string;
  /** The host's address on it with the prefix, e.g. 172.30.250.1/24; DHCP hands out the rest. */
  cidr: string;
  /** The boot server's port on that address (0: any free one). */
  httpPort: number;
  /** vmlinuz and initramfs.cpio.gz, as scripts/metal.sh builds them. */
  deployDir: string;
}

export class ProvisioningNetwork {
  private readonly sessions: SessionRegistry;
  private readonly files: FileTable;
  private readonly server: BootServer;
  private readonly dnsmasq: Dnsmasq;
  private readonly opts: ProvisioningNetworkOptions;

  private constructor(
    opts: ProvisioningNetworkOptions,
    parts: { sessions: SessionRegistry; files: FileTable; server: BootServer; dnsmasq: Dnsmasq },
  ) {
    this.opts = opts;
    this.sessions = parts.sessions;
    this.files = parts.files;
    this.server = parts.server;
    this.dnsmasq = parts.dnsmasq;
  }

  static async open(opts: ProvisioningNetworkOptions): Promise<ProvisioningNetwork> {
    const net = parseProvisioningCidr(opts.cidr);
    ensurePrivateDir(opts.dataDir);
    await bringUpBridge(opts.bridge, net);
    const sessions = new SessionRegistry();
    const files = new FileTable();
    const server = await BootServer.start({
      address: net.address,
      port: opts.httpPort,
      deployDir: opts.deployDir,
      sessions,
      files,
    });
    try {
      const dnsmasq = await Dnsmasq.start({
        bridge: opts.bridge,
        net,
        dataDir: opts.dataDir,
        ipxeUrl: `${server.baseUrl}/ipxe`,
      });
      return new ProvisioningNetwork(opts, { sessions, files, server, dnsmasq });
    } catch (err) {
      await server.close();
      throw err;
    }
  }

  /** The boot server's base URL (http://ADDR:PORT). */
  get url(): string {
    return this.server.baseUrl;
  }

  /**
   * Arms the node's next network boot with `task`. With no MACs (a node never
   * inspected) it answers the first unknown MAC, and waits while another such
   * boot is armed. A node's earlier boot is closed.
   */
  async armNetworkBoot(nodeId: string, macs: readonly string[], task: RamdiskTask): Promise<BootSession> {
    taskJson(task); // refuses URLs the ramdisk cannot take, before anything is armed
    return this.sessions.armNetwork(nodeId, macs, task);
  }

  /** Arms a boot from a per-boot ISO (served at isoUrl until the session closes). */
  async armMediaBoot(nodeId: string, task: RamdiskTask): Promise<{ session: BootSession; isoUrl: string }> {
    taskJson(task);
    const session = this.sessions.armMedia(nodeId, task);
    const iso = join(this.opts.dataDir, 'media', `${session.token}.iso`);
    try {
      await buildDeployIso(this.opts.deployDir, `${RAMDISK_ARGS} strata.url=${session.url}`, iso);
    } catch (err) {
      session.close();
      rmSync(iso, { force: true });
      throw new Error(`could not build the deploy ISO: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (session.closed) {
      rmSync(iso, { force: true });
      throw new Error(`the boot of node ${nodeId} was closed while its ISO was built`);
    }
    const isoUrl = this.serveFile(iso);
    session.cleanups.push(() => {
      this.unserveFile(isoUrl);
      rmSync(iso, { force: true });
    });
    return { session, isoUrl };
  }

  /** Serves a file to the nodes until unserved: its URL (unguessable). */
  serveFile(path: string): string {
    return `${this.server.baseUrl}/files/${this.files.add(path)}`;
  }

  unserveFile(url: string): void {
    const prefix = `${this.server.baseUrl}/files/`;
    if (url.startsWith(prefix)) this.files.delete(url.slice(prefix.length));
  }

  /** Closes every boot, stops dnsmasq and the boot server. The bridge and its addresses stay. */
  async close(): Promise<void> {
    this.sessions.close();
    rmSync(join(this.opts.dataDir, 'media'), { recursive: true, force: true });
    await this.dnsmasq.stop();
    await this.server.close();
  }
}
