export const hostKinds = ['physical', 'virtual'] as const;
export type HostKind = (typeof hostKinds)[number];

export const hostStates = ['ready', 'not-ready', 'draining', 'down'] as const;
export type HostState = (typeof hostStates)[number];

export const roles = ['admin', 'member', 'reader'] as const;
export type Role = (typeof roles)[number];
