// The tree every placement rule is stated on: region > zone > rack > physical
// host > VM host (nested, any depth) > instance. A nested host runs inside an
// instance placed on another host; its physical host is found by walking up
// through those parents, so a rule at the physical-host level holds for two
// containers in two different VMs on one server.

import type { Level } from '../model/topology.ts';

export interface TopologyHost {
  id: string;
  topology: { region: string; zone: string; rack: string };
  /** The host that runs this host's parent instance; null for a physical host. */
  parentHostId: string | null;
}

/**
 * Physical host of every host, through any depth of nesting. A parent that is
 * unknown, or a cycle (a host recorded inside itself), ends the walk at the
 * last host reached, so a broken record cannot hang the scheduler.
 */
export function physicalHosts(hosts: Iterable<TopologyHost>): Map<string, string> {
  const byId = new Map<string, TopologyHost>();
  for (const h of hosts) byId.set(h.id, h);
  const out = new Map<string, string>();
  for (const h of byId.values()) {
    const path: string[] = [];
    const seen = new Set<string>();
    let cur: TopologyHost = h;
    let root: string | undefined;
    for (;;) {
      const known = out.get(cur.id);
      if (known !== undefined) {
        root = known;
        break;
      }
      path.push(cur.id);
      seen.add(cur.id);
      const parent = cur.parentHostId === null ? undefined : byId.get(cur.parentHostId);
      if (!parent || seen.has(parent.id)) {
        root = cur.id;
        break;
      }
      cur = parent;
    }
    for (const id of path) out.set(id, root);
  }
  return out;
}

/**
 * The failure domain of a host at a level, as a key unique across the tree
 * (rack r1 in zone a is not rack r1 in zone b). Rack, zone and region are
 * those of the physical host: a VM host sits where its server sits. A server
 * with no value at a level is its own domain there: missing topology never
 * groups unrelated servers together.
 */
export function domainOf(
  h: TopologyHost,
  level: Level,
  physical: ReadonlyMap<string, string>,
  byId: ReadonlyMap<string, TopologyHost>,
): string {
  const rootId = physical.get(h.id) ?? h.id;
  const t = (byId.get(rootId) ?? h).topology;
  switch (level) {
    case 'host':
      return `h:${h.id}`;
    case 'physical-host':
      return `p:${rootId}`;
    case 'rack':
      return t.rack ? `r:${t.region}/${t.zone}/${t.rack}` : `p:${rootId}`;
    case 'zone':
      return t.zone ? `z:${t.region}/${t.zone}` : `p:${rootId}`;
    case 'region':
      return t.region ? `g:${t.region}` : `p:${rootId}`;
  }
}
