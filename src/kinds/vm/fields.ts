// A VM's own spec fields: its machine type and its cloud-init seed. TypeBox,
// loaded only where specs are validated or presented.
import { type Static, Type } from 'typebox';
import { Closed, StringEnum } from '../../model/schema-kit.ts';
import type { VmFields } from '../../drivers/vm/fields.ts';
import type { SpecOf } from '../kind.ts';
import { machineTypes } from './options.ts';

export const CloudInit = Type.Object(
  {
    userData: Type.Optional(
      Type.String({ maxLength: 65536, description: 'cloud-init user-data: #cloud-config YAML or a script' }),
    ),
    sshAuthorizedKeys: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 16384 }), { maxItems: 64 })),
  },
  { ...Closed, description: 'VMs: a NoCloud seed (hostname from the instance name) for images that run cloud-init' },
);
export type CloudInit = Static<typeof CloudInit>;

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
