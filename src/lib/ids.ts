// Resource ids: a type prefix and a ULID, so ids sort by creation time and cursor
// pagination can page by id alone.
import { monotonicFactory } from 'ulid';

const next = monotonicFactory();

export type IdPrefix = 'prj' | 'usr' | 'tok' | 'jtk' | 'hst' | 'ins';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${next().toLowerCase()}`;
}

export function hasPrefix(value: string, prefix: IdPrefix): boolean {
  return value.startsWith(`${prefix}_`) && value.length === prefix.length + 27;
}
