import type { Bmc, BmcAddress } from '../types.ts';
import { IpmiBmc } from './ipmi.ts';
import { RedfishBmc } from './redfish.ts';

export { formatBmcUrl, parseBmcUrl, redactBmcUrl } from '../../../model/bmc-url.ts';

/** The client for a node's BMC. Nothing is contacted until the first call. */
export function openBmc(addr: BmcAddress): Bmc {
  return addr.protocol === 'ipmi' ? new IpmiBmc(addr) : new RedfishBmc(addr);
}
