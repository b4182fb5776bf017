// A metal instance's flags of `strata run` (the cloud-init ones it shares with
// VMs) and its rows of `strata instance show`.
import { cloudInitFlagSpec, cloudInitFlags } from '../cloud-init.ts';
import type { CliFlag, Shown } from '../kind.ts';
import type { MetalSpec, metalOutput } from './fields.ts';

export const metalFlags: readonly CliFlag[] = cloudInitFlags;

export function metalFlagSpec(o: Record<string, unknown>): Partial<MetalSpec> {
  const cloudInit = cloudInitFlagSpec(o);
  return cloudInit ? { cloudInit } : {};
}

export function showMetal(i: Shown<typeof metalOutput> & { node?: string | null }): [string, unknown][] {
  return [
    ['Node', i.node ?? '-'],
    [
      'Config drive',
      i.cloudInit
        ? `seed with ${i.cloudInit.sshAuthorizedKeys?.length ?? 0} SSH keys${i.cloudInit.userData ? ' and user-data' : ''}`
        : 'hostname and command',
    ],
  ];
}
