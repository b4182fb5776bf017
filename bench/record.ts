// Recording a run in bench/RESULTS.md: the machine line every section opens
// with, and the section itself, which takes the place of the benchmark's
// older sections (the notes between sections, under their own headings, stay).
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

export const RESULTS_FILE = join(import.meta.dirname, 'RESULTS.md');

/** Load averages as the sections give them: `0.34 1.22 1.87`. */
export const loads = (l: readonly number[]): string => l.map(x => x.toFixed(2)).join(' ');

/** `load average before the run A B C[, after it D E F]`. */
export function loadNote(before: readonly number[], after?: readonly number[], afterWord = 'after it'): string {
  return `load average before the run ${loads(before)}${after ? `, ${afterWord} ${loads(after)}` : ''}`;
}

/** `Machine: CPU, N cores, M GiB, DETAILS.`: the details in the caller's order (Node's version, the runtimes, the load). */
export function machineLine(...details: string[]): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const parts = [cpu, `${os.availableParallelism()} cores`, `${Math.round(os.totalmem() / 2 ** 30)} GiB`, ...details];
  return `Machine: ${parts.join(', ')}.`;
}

/** What is left of `text` without the sections of `bench` (a heading to the next heading of any level). */
export function withoutSections(text: string, bench: string): string {
  const heading = new RegExp(`^## .*: bench/${bench.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const kept: string[] = [];
  let skipping = false;
  for (const line of text.split('\n')) {
    if (heading.test(line)) skipping = true;
    else if (line.startsWith('#')) skipping = false;
    if (!skipping) kept.push(line);
  }
  return kept.join('\n');
}

/**
 * Writes `## DATE: bench/BENCH`, a blank line and `body` (which ends with an
 * empty string for the final newline) at the end of RESULTS.md, in place of
 * the benchmark's older sections.
 */
export function recordSection(bench: string, body: readonly string[], file = RESULTS_FILE): void {
  if (existsSync(file)) {
    const before = readFileSync(file, 'utf8');
    const after = withoutSections(before, bench).replace(/\n+$/, '\n');
    if (after !== before) writeFileSync(file, after);
  }
  appendFileSync(file, ['', `## ${new Date().toISOString()}: bench/${bench}`, '', ...body].join('\n'));
}
