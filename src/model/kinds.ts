export const instanceKinds = ['container', 'vm', 'metal'] as const;
export type InstanceKind = (typeof instanceKinds)[number];

/**
 * Memory a host spends on an instance beyond what the instance asks for, and
 * which placement counts: a VM's QEMU process (its own code and devices, and
 * under TCG a translation cache bounded to 128 MiB; src/drivers/vm/driver.ts).
 */
export const hostMemoryOverheadMib: Record<InstanceKind, number> = { container: 0, vm: 192, metal: 0 };

export const hostKinds = ['physical', 'virtual'] as const;
export type HostKind = (typeof hostKinds)[number];

export const hostStates = ['ready', 'not-ready', 'draining', 'down'] as const;
export type HostState = (typeof hostStates)[number];

export const roles = ['admin', 'member', 'reader'] as const;
export type Role = (typeof roles)[number];
