// Isolation between projects' networks that does not rest on the runtime's
// own rules alone. Podman's netavark installs and removes its isolation rules
// as containers start and are cleaned up, and with many starts and clean-ups
// at once on one host a container of one project was seen reaching another
// project's (test/project-networks.test.ts). So the agent also keeps one
// nftables rule per project bridge, in its own table and ahead of the
// runtime's: nothing that comes in from that bridge is forwarded to another
// Strata bridge (all named `st...`, see freshBridgeName in driver.ts).
import { execFile } from 'node:child_process';

const FAMILY = 'inet';
const TABLE = 'strata';
const CHAIN = 'isolate';
/** Linux interface names, as Podman makes them and as freshBridgeName does: never anything nft would read as syntax. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export interface BridgeIsolation {
  /** Drops what would cross from `bridge` to another Strata bridge. */
  guard(bridge: string): Promise<void>;
  /** Forgets the bridge's rule (its network is gone). */
  release(bridge: string): Promise<void>;
  /**
   * Drops the rules of bridges whose networks are gone (removed by hand, or
   * by a clean-up that went around the agent). `live` is asked after the
   * rules are read, so a rule added meanwhile is never taken for a stale one.
   */
  sweep(live: () => Promise<ReadonlySet<string>>): Promise<void>;
}

type Run = (args: string[]) => Promise<string>;

const nft: Run = args =>
  new Promise((resolve, reject) =>
    execFile('nft', args, { timeout: 10_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`nft ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout),
    ),
  );

export class NftIsolation implements BridgeIsolation {
  private readonly run: Run;
  private ready: Promise<void> | undefined;

  constructor(run: Run = nft) {
    this.run = run;
  }

  async guard(bridge: string): Promise<void> {
    checkName(bridge);
    await this.ensureChain();
    if ((await this.handles(bridge)).length > 0) return;
    await this.run([
      'add',
      'rule',
      FAMILY,
      TABLE,
      CHAIN,
      'iifname',
      `"${bridge}"`,
      'oifname',
      '!=',
      `"${bridge}"`,
      'oifname',
      '"st*"',
      'drop',
      'comment',
      `"${bridge}"`,
    ]);
  }

  async release(bridge: string): Promise<void> {
    checkName(bridge);
    await this.ensureChain();
    for (const handle of await this.handles(bridge))
      await this.run(['delete', 'rule', FAMILY, TABLE, CHAIN, 'handle', handle]);
  }

  async sweep(live: () => Promise<ReadonlySet<string>>): Promise<void> {
    await this.ensureChain();
    const rules = await this.rules();
    const alive = await live();
    for (const { bridge, handle } of rules)
      if (!alive.has(bridge)) await this.run(['delete', 'rule', FAMILY, TABLE, CHAIN, 'handle', handle]);
  }

  /** The table and its forward chain, made once (`add` leaves existing ones alone). */
  private ensureChain(): Promise<void> {
    this.ready ??= (async () => {
      await this.run(['add', 'table', FAMILY, TABLE]);
      await this.run([
        'add',
        'chain',
        FAMILY,
        TABLE,
        CHAIN,
        '{ type filter hook forward priority -10 ; policy accept ; }',
      ]);
    })().catch(err => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  /** Handles of the rules kept for `bridge` (several agents on one runtime may each have added one). */
  private async handles(bridge: string): Promise<string[]> {
    return (await this.rules()).filter(r => r.bridge === bridge).map(r => r.handle);
  }

  private async rules(): Promise<{ bridge: string; handle: string }[]> {
    const listing = await this.run(['-a', 'list', 'chain', FAMILY, TABLE, CHAIN]);
    const out: { bridge: string; handle: string }[] = [];
    for (const line of listing.split('\n')) {
      const m = /comment "([^"]+)" # handle (\d+)$/.exec(line.trim());
      if (m?.[1] && m[2]) out.push({ bridge: m[1], handle: m[2] });
    }
    return out;
  }
}

function checkName(bridge: string): void {
  if (!IFNAME.test(bridge)) throw new Error(`not an interface name: ${JSON.stringify(bridge)}`);
}
