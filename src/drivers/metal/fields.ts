// What the metal driver reads of its kind's own fields in an assignment
// (src/kinds/metal/fields.ts defines them on the wire).
import type { CloudInit } from '../vm/fields.ts';

export interface MetalFields {
  cloudInit: CloudInit | null;
}
