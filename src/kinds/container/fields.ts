// A container's own spec fields: who it runs as, what it publishes on its
// host, and its root filesystem. TypeBox, loaded only where specs are
// validated or presented (the registry itself loads no TypeBox).
import { type Static, Type } from 'typebox';
import { AbsolutePath, Closed, StringEnum } from '../../model/schema-kit.ts';
import type { ContainerFields } from '../../drivers/container/fields.ts';
import type { SpecOf } from '../kind.ts';

export const Port = Type.Object(
  {
    containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    hostPort: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 65535,
        description: 'absent or 0: any free port, reported in observed.ports',
      }),
    ),
    protocol: Type.Optional(StringEnum(['tcp', 'udp'], { default: 'tcp' })),
    hostIp: Type.Optional(Type.String({ format: 'ipv4', description: 'host address to bind; default all' })),
  },
  Closed,
);
export const Tmpfs = Type.Object(
  {
    path: AbsolutePath,
    sizeMib: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024 })),
  },
  Closed,
);
export type Port = Static<typeof Port>;
export type TmpfsMount = Static<typeof Tmpfs>;

const User = Type.String({
  maxLength: 64,
  pattern: '^([A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?)?$',
  description: "user[:group], names or ids; default: the image's",
});

export const containerSpec = {
  user: Type.Optional(User),
  ports: Type.Optional(Type.Array(Port, { maxItems: 64 })),
  readOnlyRootfs: Type.Optional(Type.Boolean()),
  tmpfs: Type.Optional(Type.Array(Tmpfs, { maxItems: 16 })),
};
export type ContainerSpec = SpecOf<typeof containerSpec>;

export const containerOutput = {
  user: Type.String(),
  ports: Type.Array(Port),
  readOnlyRootfs: Type.Boolean(),
  tmpfs: Type.Array(Tmpfs),
};
/** The container driver reads them as it declares them (a type error here otherwise). */
type DriverReads<T extends ContainerFields> = T;
export type ContainerOutput = DriverReads<SpecOf<typeof containerOutput>>;
