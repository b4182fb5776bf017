// What the conductor uses to give a node its disk: a whole-disk image built
// from an OCI image or fetched by URL, and the per-instance config drive.
export {
  buildConfigDrive,
  CONFIG_DRIVE_LABEL,
  type ConfigDriveSettings,
  LIMITS as CONFIG_DRIVE_LIMITS,
} from './config-drive.ts';
export { type FetchDiskOptions, type FetchedDisk, fetchDiskImage } from './fetch-disk.ts';
export {
  buildWholeDiskImage,
  KERNEL_APPEND,
  type WholeDisk,
  type WholeDiskOptions,
} from './whole-disk.ts';
