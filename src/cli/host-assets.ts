// Where scripts/vm.sh and scripts/metal.sh put what the VM and metal drivers
// boot: the defaults of the agent's flags, which `strata dev` checks too.
import { join } from 'node:path';

export const DEFAULT_VM_ASSETS = '/var/lib/strata-host/vm';

export const defaultMetalAssets = (): string =>
  join(process.env.STRATA_METAL_DIR ?? '/var/lib/strata-host/metal', 'deploy');
