// TypeBox building blocks shared by the API's schemas and the kinds' spec
// schemas (src/kinds/), which must not import the API.
import { type Static, type TSchema, Type } from 'typebox';

export const StringEnum = <const T extends readonly string[]>(values: T, opts: Record<string, unknown> = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...opts });

export const Closed = { additionalProperties: false } as const;

/**
 * A JSON object whose every key matches `keyPattern` (which also bounds its
 * length) and every value `value`: a key that does not match is refused, not
 * passed through unchecked as a plain Type.Record would.
 */
export const StringMap = <V extends TSchema>(keyPattern: string, value: V, opts: Record<string, unknown> = {}) =>
  Type.Unsafe<Record<string, Static<V>>>({
    type: 'object',
    patternProperties: { [keyPattern]: value },
    additionalProperties: false,
    ...opts,
  });

/**
 * A clean absolute path: `/` then names of letters, digits and `._@+~=-`,
 * no `.` or `..` component, no empty one, no trailing slash. Nothing a
 * runtime or a shell reads as an option or a separator (`:`, `,`, spaces,
 * quotes, NUL) can appear.
 */
export const AbsolutePath = Type.String({
  minLength: 1,
  maxLength: 1024,
  pattern: '^(?!.*/\\.{1,2}(/|$))(/[A-Za-z0-9._@+~=-]+)+$|^/$',
  description: 'a clean absolute path: names of letters, digits and ._@+~=- under /, no . or .. components',
});
