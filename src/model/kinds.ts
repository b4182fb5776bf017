/** metal: an enrolled bare-metal node, driven by a conductor rather than an agent of its own. */
export const hostKinds = ['physical', 'virtual', 'metal'] as const;
export type HostKind = (typeof hostKinds)[number];

export const hostStates = ['ready', 'not-ready', 'draining', 'down'] as const;
export type HostState = (typeof hostStates)[number];

export const roles = ['admin', 'member', 'reader'] as const;
export type Role = (typeof roles)[number];
