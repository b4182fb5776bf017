// The VM kind's driver factory, loaded only by an agent that makes drivers.
import { join } from 'node:path';
import { ContainerDriver } from '../../drivers/container/driver.ts';
import type { Driver } from '../../drivers/driver.ts';
import { VmDriver } from '../../drivers/vm/driver.ts';
import type { DriverSettings } from '../kind.ts';

export function createVmDriver(s: DriverSettings): Driver {
  return new VmDriver({
    dataDir: join(s.dataDir, 'vm'),
    assetsDir: s.vmAssets,
    bootTimeoutSeconds: s.vmBootTimeoutSeconds,
    // VMs boot OCI images too, pulled through the container runtime.
    oci: new ContainerDriver({ socketPath: s.dockerSocket, registryAuth: s.registryAuth }),
    bridge: s.vmBridge,
    subnet: s.vmSubnet,
  });
}
