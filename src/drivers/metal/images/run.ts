// Running the host tools the image builders need: argv arrays only, and an
// error that says which tool failed and what it printed.
import { execFile, spawn } from 'node:child_process';

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export function run(cmd: string, args: readonly string[], o: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 16 * 1024 * 1024, timeout: o.timeoutMs ?? 10 * 60_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const said = (stderr || stdout || err.message).trim().split('\n').slice(-5).join('; ');
        reject(new Error(`${cmd} failed: ${said}`));
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** Runs `cmd` with its stdout written to the file descriptor `out` (for cpio | gzip). */
export function pipeline(steps: { cmd: string; args: readonly string[]; cwd?: string }[], out: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let prev: NodeJS.ReadableStream | undefined;
    let pending = steps.length;
    const errors: string[] = [];
    steps.forEach((s, i) => {
      const last = i === steps.length - 1;
      const child = spawn(s.cmd, s.args, {
        cwd: s.cwd,
        stdio: [prev ? 'pipe' : 'ignore', last ? out : 'pipe', 'pipe'],
      });
      if (prev && child.stdin) prev.pipe(child.stdin);
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', e => errors.push(`${s.cmd}: ${e.message}`));
      child.once('close', code => {
        if (code !== 0) errors.push(`${s.cmd} exited with ${code}: ${err.trim()}`);
        if (--pending === 0) errors.length ? reject(new Error(errors.join('; '))) : resolve();
      });
      prev = child.stdout ?? undefined;
    });
  });
}
