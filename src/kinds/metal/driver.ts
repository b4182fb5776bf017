// The metal kind's driver factory, loaded only by an agent that makes drivers.
import { join } from 'node:path';
import type { Driver } from '../../drivers/driver.ts';
import { MetalDriver } from '../../drivers/metal/driver.ts';
import type { DriverSettings } from '../kind.ts';

export function createMetalDriver(s: DriverSettings): Driver {
  return new MetalDriver({
    dataDir: join(s.dataDir, 'metal'),
    bridge: s.metalBridge,
    cidr: s.metalCidr,
    httpPort: s.metalHttpPort,
    deployDir: s.metalAssets,
    kernelDir: join(s.vmAssets, 'kernel'),
    dockerSocket: s.dockerSocket,
    registryAuth: s.registryAuth,
    log: s.log,
  });
}
