// Output helpers: every command prints either a concise table (the default),
// or the API objects themselves as JSON or YAML (-o json|yaml), so scripts see
// exactly what the API returned.
export const formats = ['table', 'json', 'yaml'] as const;
export type Format = (typeof formats)[number];

export interface Column<T> {
  header: string;
  value: (item: T) => string | number | null | undefined;
}

export const col = <T>(header: string, value: (item: T) => string | number | null | undefined): Column<T> => ({
  header,
  value,
});

/** Text in which every character takes one column of a terminal: printable ASCII, and stateText's arrow. */
const NARROW = /^[\x20-\x7e→]*$/;

/** A borderless table, kubectl style: header row, columns padded by three spaces. */
export async function table(headers: string[], rows: (string | number | null | undefined)[][]): Promise<string> {
  const body = rows.map(r => r.map(c => (c === null || c === undefined || c === '' ? '-' : String(c))));
  if ([headers, ...body].every(r => r.every(c => NARROW.test(c)))) return padded([headers, ...body]);
  // Wide characters, emoji, escapes, line breaks: cli-table3 measures and lays
  // them out. Loaded only then: it costs a quick command about 8 ms.
  const { default: Table } = await import('cli-table3');
  const t = new Table({
    head: headers,
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '   ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
  });
  for (const r of body) t.push(r);
  return t
    .toString()
    .split('\n')
    .map(l => l.trimEnd())
    .join('\n');
}

/** The table cli-table3 draws with the settings above, for one-column characters. */
function padded(lines: string[][]): string {
  const widths = lines[0]!.map((_, i) => Math.max(1, ...lines.map(l => l[i]?.length ?? 0)));
  return lines
    .map(l =>
      l
        .map((c, i) => c.padEnd(widths[i]!))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

async function toYaml(value: unknown): Promise<string> {
  const { stringify } = await import('yaml');
  return stringify(value, { lineWidth: 0 });
}

/** Renders a value as JSON or YAML (not for table mode). */
export async function serialize(value: unknown, format: Format): Promise<string> {
  if (format === 'yaml') return (await toYaml(value)).replace(/\n$/, '');
  return JSON.stringify(value, null, 2);
}

/** A list: a table of the given columns, or the API objects as a JSON/YAML array. */
export async function renderList<T>(
  items: T[],
  columns: Column<T>[],
  format: Format,
  empty = 'No resources found.',
): Promise<string> {
  if (format !== 'table') return serialize(items, format);
  if (items.length === 0) return empty;
  return table(
    columns.map(c => c.header),
    items.map(it => columns.map(c => c.value(it))),
  );
}

export type Field = [label: string, value: unknown];

/** One object: "Label:  value" lines in table mode, the API object otherwise. */
export async function renderObject(obj: unknown, fields: Field[], format: Format): Promise<string> {
  if (format !== 'table') return serialize(obj, format);
  const width = Math.max(...fields.map(([l]) => l.length)) + 3;
  const lines: string[] = [];
  for (const [label, value] of fields) {
    const head = `${label}:`.padEnd(width);
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
      lines.push(`${label}:`);
      for (const [k, v] of Object.entries(value)) lines.push(`  ${k}: ${scalar(v)}`);
    } else if (Array.isArray(value) && value.length > 0 && value.some(v => typeof v === 'object' && v !== null)) {
      lines.push(`${label}:`);
      for (const v of value) lines.push(`  - ${scalar(v)}`);
    } else {
      lines.push(`${head}${scalar(value)}`);
    }
  }
  return lines.join('\n');
}

function scalar(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v))
    return v.length === 0 ? '-' : v.map(x => (typeof x === 'string' ? shellQuote(x) : scalar(x))).join(' ');
  if (typeof v === 'object') {
    const entries = Object.entries(v);
    return entries.length === 0 ? '-' : entries.map(([k, x]) => `${k}=${scalar(x)}`).join(', ');
  }
  return String(v);
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

export function labelsText(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length ? entries.map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join(',') : '-';
}

/** 42s, 5m, 3h, 12d, 2y: how long ago an ISO timestamp was. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const ms = now - Date.parse(iso);
  return Number.isNaN(ms) ? '-' : span(ms / 1000, Math.floor);
}

/** A length of time in its largest sensible unit, e.g. 90s, 12h, 30d. */
export function span(seconds: number, round: (n: number) => number = Math.round): string {
  const s = Math.max(0, round(seconds));
  if (s < 120) return `${s}s`;
  const m = round(s / 60);
  if (m < 120) return `${m}m`;
  const h = round(s / 3600);
  if (h < 48) return `${h}h`;
  const d = round(s / 86400);
  return d < 730 ? `${d}d` : `${round(s / (365 * 86400))}y`;
}

/** 512 -> 512Mi, 2048 -> 2Gi, 1536 -> 1.5Gi. */
export function mib(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}Gi`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)}Gi`;
  return `${n}Mi`;
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}
