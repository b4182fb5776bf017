// The container kind's driver factory, loaded only by an agent that makes drivers.
import { ContainerDriver } from '../../drivers/container/driver.ts';
import type { Driver } from '../../drivers/driver.ts';
import type { DriverSettings } from '../kind.ts';

export function createContainerDriver(s: DriverSettings): Driver {
  return new ContainerDriver({ socketPath: s.dockerSocket, registryAuth: s.registryAuth });
}
