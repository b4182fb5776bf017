// What the container driver reads of its kind's own fields in an assignment.
// The kind defines them on the wire (src/kinds/container/fields.ts) and its
// type check holds them to this shape.
export interface ContainerFields {
  user: string;
  ports: { containerPort: number; hostPort?: number; protocol?: 'tcp' | 'udp'; hostIp?: string }[];
  readOnlyRootfs: boolean;
  tmpfs: { path: string; sizeMib?: number }[];
}
