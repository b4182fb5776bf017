// Spec files: YAML, one or several documents, each
//   apiVersion: strata/v1
//   kind: Deployment | Instance
//   metadata: {name, project?, labels?}
//   spec: {...}    (a Deployment's spec, or a bare Instance's)
// Each document becomes the body the API takes. The YAML library keeps every
// node's place in the file, so a problem found here, or one the API names by
// its field (`body.template.image`), is reported at its line and column.
import { isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, type Document } from 'yaml';
import { LocatedError } from './common.ts';

export const API_VERSION = 'strata/v1';
export const documentKinds = ['Deployment', 'Instance'] as const;
export type DocumentKind = (typeof documentKinds)[number];

/** One problem, where it is in its file ("app.yaml:12:7"). */
export interface Located {
  where: string;
  message: string;
}

/** Problems with a spec file, each at its place: nothing was sent. */
export class SpecFileError extends LocatedError {}

export interface SpecDoc {
  file: string;
  kind: DocumentKind;
  name: string;
  /** metadata.project, when the document names one */
  project: string | undefined;
  labels: Record<string, string> | undefined;
  spec: Record<string, unknown>;
  /** "app.yaml:3:1": where the document names itself, for messages about all of it */
  where: string;
  /** The document's path of a field the API names: body.template.image -> spec.template.image. */
  pathOf(field: string): string;
  /** Where a field the API names (`body.template.image`) is in the file, as near as the file has it. */
  locate(field: string, message?: string): string;
}

/** A document's own fields: what a kind's spec must not repeat. */
const metadataFields = ['name', 'project', 'labels'];

/** The document path of an API body's field: name, project and labels live in metadata, the rest in spec. */
export function documentPath(field: string): string[] {
  const parts = field.split('.').filter(p => p !== '');
  if (parts[0] === 'body') parts.shift();
  if (parts.length === 0) return ['spec'];
  if (metadataFields.includes(parts[0]!)) return ['metadata', ...parts];
  return ['spec', ...parts];
}

interface Place {
  line: number;
  col: number;
}

/** The deepest node of `path` the document has: the value when there is one, else its key. */
function nodeAt(doc: Document, path: readonly string[], unknownKey?: string): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = doc.contents ?? undefined;
  const steps = unknownKey === undefined ? path : [...path, unknownKey];
  for (const [i, step] of steps.entries()) {
    if (isMap(node)) {
      const pair = node.items.find(p => isScalar(p.key) && String(p.key.value) === step);
      if (!pair) break;
      const key = pair.key as Node;
      const last = i === steps.length - 1;
      // An unknown field is shown at its key; anything else at its value.
      found = last && unknownKey !== undefined ? key : ((pair.value as Node | null) ?? key);
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(step)];
      if (!Number.isInteger(Number(step)) || !item) break;
      found = item as Node;
      node = item;
    } else break;
  }
  return found;
}

export function parseSpecFile(text: string, file: string): SpecDoc[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const problems: Located[] = [];
  const at = (p: Place | undefined) => `${file}:${p?.line ?? 1}:${p?.col ?? 1}`;
  const where = (node: Node | null | undefined) => at(node?.range ? lines.linePos(node.range[0]) : undefined);
  const out: SpecDoc[] = [];
  if (!Array.isArray(docs)) return [];
  for (const doc of docs) {
    for (const e of doc.errors) problems.push({ where: at(e.linePos?.[0]), message: e.message.split('\n')[0]! });
    if (doc.errors.length > 0) continue;
    // An empty document (a trailing ---, comments only) holds nothing.
    const top = doc.contents;
    if (top === null || (isScalar(top) && top.value === null)) continue;
    const fault = (node: Node | null | undefined, message: string) => problems.push({ where: where(node), message });
    if (!isMap(top)) {
      fault(top, `a document is a mapping of apiVersion, kind, metadata and spec`);
      continue;
    }
    const field = (map: Node | null | undefined, key: string): Node | undefined => {
      if (!isMap(map)) return undefined;
      const pair = map.items.find(p => isScalar(p.key) && p.key.value === key);
      return (pair?.value as Node | null | undefined) ?? undefined;
    };
    const unknown = (map: Node, allowed: readonly string[], what: string) => {
      if (!isMap(map)) return;
      for (const p of map.items) {
        const key = isScalar(p.key) ? String(p.key.value) : String(p.key);
        if (!allowed.includes(key))
          fault(p.key as Node, `unknown field ${JSON.stringify(key)} (${what} has ${allowed.join(', ')})`);
      }
    };
    unknown(top, ['apiVersion', 'kind', 'metadata', 'spec'], 'a document');
    const apiVersion = field(top, 'apiVersion');
    if (!apiVersion) fault(top, `apiVersion is missing: ${API_VERSION}`);
    else if (!isScalar(apiVersion) || apiVersion.value !== API_VERSION)
      fault(apiVersion, `apiVersion must be ${API_VERSION}`);
    const kindNode = field(top, 'kind');
    const kind = isScalar(kindNode) ? String(kindNode.value) : undefined;
    if (!kindNode) fault(top, `kind is missing: ${documentKinds.join(' or ')}`);
    else if (!(documentKinds as readonly string[]).includes(kind ?? ''))
      fault(kindNode, `kind must be ${documentKinds.join(' or ')}`);
    const metadata = field(top, 'metadata');
    if (!isMap(metadata)) fault(metadata ?? top, 'metadata must be a mapping with a name (and project, labels)');
    else unknown(metadata, metadataFields, 'metadata');
    const nameNode = field(metadata, 'name');
    if (isMap(metadata) && !(isScalar(nameNode) && typeof nameNode.value === 'string'))
      fault(nameNode ?? metadata, 'metadata.name must be a name');
    const projectNode = field(metadata, 'project');
    if (projectNode && !(isScalar(projectNode) && typeof projectNode.value === 'string'))
      fault(projectNode, 'metadata.project must be a project name or id');
    const labelsNode = field(metadata, 'labels');
    if (labelsNode && !isMap(labelsNode)) fault(labelsNode, 'metadata.labels must be a mapping of labels');
    const specNode = field(top, 'spec');
    if (!isMap(specNode)) fault(specNode ?? top, `spec must be a mapping: the ${kind ?? 'document'}'s spec`);
    else
      for (const key of metadataFields) {
        const repeated = specNode.items.find(p => isScalar(p.key) && p.key.value === key);
        if (repeated) fault(repeated.key as Node, `${key} goes in metadata.${key}, not in spec`);
      }
    if (problems.length > 0) continue;
    const name = String((nameNode as { value: unknown }).value);
    const js = doc.toJS() as {
      metadata: { project?: string; labels?: Record<string, string> };
      spec: Record<string, unknown>;
    };
    out.push({
      file,
      kind: kind as DocumentKind,
      name,
      project: js.metadata.project,
      labels: js.metadata.labels,
      spec: js.spec,
      where: where(nameNode),
      pathOf: f => documentPath(f).join('.'),
      locate(f, message) {
        const unknownKey = /has unknown field "([^"]+)"/.exec(message ?? '')?.[1];
        return where(nodeAt(doc, documentPath(f), unknownKey) ?? nameNode);
      },
    });
  }
  const seen = new Map<string, SpecDoc>();
  for (const d of out) {
    const key = `${d.kind}/${d.project ?? ''}/${d.name}`;
    const first = seen.get(key);
    if (first) problems.push({ where: d.where, message: `${d.kind} ${d.name} is also given at ${first.where}` });
    seen.set(key, d);
  }
  if (problems.length > 0) throw new SpecFileError(problems);
  return out;
}

/** A field's value as a diff shows it. */
function shown(v: unknown): string {
  if (v === undefined) return '(none)';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Leaf paths of an object: nested objects are walked, arrays and scalars are values. */
function leaves(value: unknown, prefix: string, out = new Map<string, unknown>()): Map<string, unknown> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0 && prefix) out.set(prefix, {});
    for (const [k, v] of entries) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out.set(prefix, value);
  return out;
}

/** What changes from `before` to `after`, one line a field: `spec.replicas: 3 → 1`. */
export function diffLines(before: unknown, after: unknown, prefix: string): string[] {
  const a = leaves(before, prefix);
  const b = leaves(after, prefix);
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const lines: string[] = [];
  for (const p of paths) {
    const was = a.get(p);
    const will = b.get(p);
    if (JSON.stringify(was) !== JSON.stringify(will)) lines.push(`${p}: ${shown(was)} → ${shown(will)}`);
  }
  return lines;
}

/**
 * Whether a stored object already holds what a spec gives: each given field
 * equals the stored one (objects compared field by field, so defaults the
 * server filled in do not count as changes); the fields that differ, as
 * diff lines.
 */
export function givenDiffers(given: unknown, stored: unknown, prefix: string): string[] {
  if (given !== null && typeof given === 'object' && !Array.isArray(given)) {
    const s = (stored !== null && typeof stored === 'object' ? stored : {}) as Record<string, unknown>;
    return Object.entries(given as Record<string, unknown>).flatMap(([k, v]) =>
      givenDiffers(v, s[k], prefix ? `${prefix}.${k}` : k),
    );
  }
  return JSON.stringify(given) === JSON.stringify(stored) ? [] : [`${prefix}: ${shown(stored)} → ${shown(given)}`];
}
