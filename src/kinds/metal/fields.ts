// A metal instance's own spec fields: its cloud-init seed (the config drive).
// TypeBox, loaded only where specs are validated or presented.
import { Type } from 'typebox';
import type { MetalFields } from '../../drivers/metal/fields.ts';
import { CloudInit } from '../cloud-init-schema.ts';
import type { SpecOf } from '../kind.ts';

export const metalSpec = {
  cloudInit: Type.Optional(CloudInit),
};
export type MetalSpec = SpecOf<typeof metalSpec>;

export const metalOutput = {
  cloudInit: Type.Union([CloudInit, Type.Null()]),
};
/** The metal driver reads them as it declares them (a type error here otherwise). */
type DriverReads<T extends MetalFields> = T;
export type MetalOutput = DriverReads<SpecOf<typeof metalOutput>>;
