// A VM's defaults and what it presents.
import type { VmOutput, VmSpec } from './fields.ts';

export const machineTypes = ['microvm', 'q35'] as const;

export const vmOptions = (s: VmSpec): VmOutput => ({ machine: s.machine ?? 'microvm', cloudInit: s.cloudInit ?? null });

export const presentVm = (o: Partial<VmOutput>): VmOutput => ({
  machine: o.machine ?? 'microvm',
  cloudInit: o.cloudInit ?? null,
});
