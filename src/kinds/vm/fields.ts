// A VM's own spec fields: its machine type and its cloud-init seed. TypeBox,
// loaded only where specs are validated or presented.
import { Type } from 'typebox';
import { StringEnum } from '../../model/schema-kit.ts';
import { CloudInit } from '../cloud-init-schema.ts';
import type { VmFields } from '../../drivers/vm/fields.ts';
import type { SpecOf } from '../kind.ts';
import { machineTypes } from './options.ts';

export const MachineType = StringEnum(machineTypes, {
  description: 'VMs: microvm (fast, virtio-mmio) or q35 (PCI, full ACPI)',
});

export const vmSpec = {
  machine: Type.Optional(MachineType),
  cloudInit: Type.Optional(CloudInit),
};
export type VmSpec = SpecOf<typeof vmSpec>;

export const vmOutput = {
  machine: MachineType,
  cloudInit: Type.Union([CloudInit, Type.Null()]),
};
/** The VM driver reads them as it declares them (a type error here otherwise). */
type DriverReads<T extends VmFields> = T;
export type VmOutput = DriverReads<SpecOf<typeof vmOutput>>;
