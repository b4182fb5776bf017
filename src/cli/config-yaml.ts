// YAML for the config file, without loading the YAML library on every command:
// every command reads the file, and the library costs about 25 ms to load, a
// third of a quick command. The file as the CLI writes it (nested mappings of
// plain words, URLs and tokens) is read here; anything else (comments, quotes,
// lists, numbers...) goes to the library, so what a file means never changes.
import { createRequire } from 'node:module';

type Yaml = typeof import('yaml');
let library: Yaml | undefined;
// Loaded on first use, synchronously, so readers and writers stay synchronous.
const yaml = (): Yaml => (library ??= createRequire(import.meta.url)('yaml') as Yaml);

const KEY = /^[A-Za-z_][\w-]*$/;
/** A plain scalar that YAML's core schema reads as this very string (not null, a boolean or a number). */
const WORD = /^[A-Za-z][\w.:/@+=~%-]*$/;
const NOT_STRINGS = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);

type Mapping = Record<string, unknown>;

/**
 * The document when it is block mappings of words only (indented by spaces, no
 * comments), else undefined (the library then reads it). What it answers
 * equals the library's parse of the same text.
 */
export function parseWords(text: string): Mapping | undefined {
  const root: Mapping = {};
  const stack: { indent: number; map: Mapping }[] = [{ indent: 0, map: root }];
  // A key that ended its line: a mapping when the next line is indented more, else null.
  let open: { indent: number; parent: Mapping; key: string } | undefined;
  let empty = true;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    empty = false;
    const m = /^( *)([^ :]+):(?: (.*))?$/.exec(line);
    if (!m?.[2]) return undefined;
    const indent = m[1]!.length;
    const key = m[2];
    const value = m[3];
    if (open) {
      if (indent > open.indent) {
        const child: Mapping = {};
        open.parent[open.key] = child;
        stack.push({ indent, map: child });
      } else open.parent[open.key] = null;
      open = undefined;
    }
    while (indent < stack[stack.length - 1]!.indent) stack.pop();
    const top = stack[stack.length - 1]!;
    if (indent !== top.indent || !KEY.test(key) || NOT_STRINGS.has(key) || key === '__proto__') return undefined;
    if (Object.hasOwn(top.map, key)) return undefined;
    if (value === undefined) {
      open = { indent, parent: top.map, key };
      continue;
    }
    if (!WORD.test(value) || NOT_STRINGS.has(value) || value.endsWith(':')) return undefined;
    top.map[key] = value;
  }
  if (empty) return undefined;
  if (open) open.parent[open.key] = null;
  return root;
}

/** The document's value, as the YAML library reads it; throws what the library throws. */
export function readYaml(text: string): unknown {
  return parseWords(text) ?? yaml().parse(text);
}

export function writeYaml(value: unknown): string {
  return yaml().stringify(value);
}
