// A metal instance's defaults and what it presents.
import type { MetalOutput, MetalSpec } from './fields.ts';

export const metalOptions = (s: MetalSpec): MetalOutput => ({ cloudInit: s.cloudInit ?? null });

export const presentMetal = (o: Partial<MetalOutput>): MetalOutput => ({ cloudInit: o.cloudInit ?? null });
