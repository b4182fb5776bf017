// The NoCloud seed's TypeBox schema, loaded only where specs are validated.
import { type Static, Type } from 'typebox';
import { Closed } from '../model/schema-kit.ts';

export const CloudInit = Type.Object(
  {
    userData: Type.Optional(
      Type.String({ maxLength: 65536, description: 'cloud-init user-data: #cloud-config YAML or a script' }),
    ),
    sshAuthorizedKeys: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 16384 }), { maxItems: 64 })),
  },
  {
    ...Closed,
    description: 'VMs and metal: a NoCloud seed (hostname from the instance name) for images that run cloud-init',
  },
);
export type CloudInit = Static<typeof CloudInit>;
