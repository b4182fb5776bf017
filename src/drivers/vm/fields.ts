// What the VM driver reads of its kind's own fields in an assignment. The
// kind defines them on the wire (src/kinds/vm/fields.ts) and its type check
// holds them to this shape.
export type Machine = 'microvm' | 'q35';

export interface CloudInit {
  userData?: string;
  sshAuthorizedKeys?: string[];
}

export interface VmFields {
  machine: Machine;
  cloudInit: CloudInit | null;
}
