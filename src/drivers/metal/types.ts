// The parts of bare-metal provisioning and how they meet. A conductor (the
// agent of a host with the metal driver) drives each node it owns through its
// BMC (bmc/: IPMI or Redfish behind one interface), boots the deploy ramdisk
// on it (by network boot, or by virtual media for Redfish), and gives the
// ramdisk one task through the boot server (provisioning/): report the
// hardware, wipe the disks, or write a whole-disk image and a config drive.

export type { BmcAddress } from '../../model/bmc-url.ts';

export type PowerState = 'on' | 'off';

/** pxe: network boot; disk: the node's own disk; cd: the virtual media (Redfish). */
export type BootDevice = 'pxe' | 'disk' | 'cd';

/** A BMC said no, or could not be reached: the reason is fit for a user (no credentials in it). */
export class BmcError extends Error {
  readonly reason: 'unreachable' | 'auth' | 'unsupported' | 'failed';
  /** The same call may well work if made again (a busy or lossy BMC). */
  readonly transient: boolean;

  constructor(message: string, reason: BmcError['reason'], transient = false) {
    super(message);
    this.name = 'BmcError';
    this.reason = reason;
    this.transient = transient;
  }
}

/** A node's serial console: what it prints, and keys typed into it. */
export interface ConsoleSession {
  output: AsyncIterable<Buffer>;
  write(data: Buffer): void;
  close(): void;
}

/** One node's BMC. Every call is idempotent and times out with a BmcError. */
export interface Bmc {
  readonly protocol: 'ipmi' | 'redfish';
  /** Reachable, and the credentials are good. */
  verify(): Promise<void>;
  power(): Promise<PowerState>;
  /**
   * Hard power on or off; nothing when already so. `from`: the state the
   * caller has just seen or set, which spares asking the BMC first (each
   * request to a BMC can take a second).
   */
  setPower(state: PowerState, from?: PowerState): Promise<void>;
  /** The device of the next boot, and of every boot after it when `persistent`. */
  setBootDevice(device: BootDevice, persistent: boolean): Promise<void>;
  /** Virtual media: Redfish only (`supportsVirtualMedia`). */
  readonly supportsVirtualMedia: boolean;
  insertMedia(imageUrl: string): Promise<void>;
  ejectMedia(): Promise<void>;
  /** The serial console: IPMI serial-over-LAN, or what the Redfish service offers. */
  openConsole(): Promise<ConsoleSession>;
}

/** What the deploy ramdisk found on the node: inspection fills the node's capacity from it. */
export interface Hardware {
  cpus: number;
  memoryMib: number;
  disks: { name: string; sizeBytes: number }[];
  nics: { name: string; mac: string }[];
}

/** The one task a booted ramdisk is given. */
export type RamdiskTask =
  | { action: 'inspect' }
  | { action: 'clean' }
  /** Write a raw whole-disk image to the first disk, then the config drive (NoCloud ISO) if any. */
  | { action: 'deploy'; imageUrl: string; configDriveUrl: string | null };

export interface TaskResult {
  ok: boolean;
  message: string;
}

/** One armed boot of the ramdisk on one node. */
export interface BootSession {
  readonly nodeId: string;
  /** Resolves with the hardware the ramdisk reports when it arrives. */
  hello(signal: AbortSignal): Promise<Hardware>;
  /** Resolves when the ramdisk has finished its task, well or not. */
  done(signal: AbortSignal): Promise<TaskResult>;
  /** Disarms: a later boot of the node is no longer answered with this task. */
  close(): void;
}
