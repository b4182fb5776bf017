// `strata logs` and `strata exec`: an instance's output and commands inside it,
// streamed through the server (which checks the caller's project and role).
import type { Command } from 'commander';
import { Channel, frame, parseFrame, parseStatus } from '../lib/stream-frames.ts';
import { enc } from './client.ts';
import { ctxOf, intArg, leaf, UsageError } from './common.ts';
import { resolveInstance } from './instances.ts';

export function logsCommand(): Command {
  return leaf('logs', "print an instance's output (stdout and stderr, each to its own)")
    .argument('<instance>', 'instance name (in the current project) or id')
    .option('-f, --follow', 'keep printing new output until the instance stops (Ctrl-C to leave)')
    .option('--tail <n>', 'only the last N lines', intArg(0))
    .addHelpText('after', '\nExamples:\n  strata logs web\n  strata logs -f --tail 100 web')
    .action(async (ref: string, o: { follow?: boolean; tail?: number }, c: Command) => {
      const ctx = ctxOf(c);
      const id = await resolveInstance(ctx, ref);
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      await ctx.client.logs(
        id,
        { follow: o.follow, tail: o.tail },
        chunk => (chunk.stream === 'stderr' ? process.stderr : process.stdout).write(chunk.data),
        abort.signal,
      );
    });
}

export function execCommand(): Command {
  return leaf('exec', 'run a command inside a running instance; exits with its exit code')
    .argument('<instance>', 'instance name (in the current project) or id')
    .argument('<command...>', 'the command and its arguments, after --')
    .option('-i, --stdin', 'pass standard input to the command')
    .option('-t, --tty', 'give the command a terminal (use with -i for a shell)')
    .addHelpText(
      'after',
      '\nExamples:\n  strata exec -it web -- sh\n  strata exec web -- cat /etc/hostname\n  echo hello | strata exec -i web -- cat',
    )
    .action(async (ref: string, command: string[], o: { stdin?: boolean; tty?: boolean }, c: Command) => {
      if (command.length === 0) throw new UsageError('give the command to run after --, e.g. `strata exec web -- sh`');
      const ctx = ctxOf(c);
      const id = await resolveInstance(ctx, ref);
      const interactive = (o.tty ?? false) && process.stdin.isTTY === true;
      const size = () => ({ cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 });
      const { ws, messages: input } = await ctx.client.socket(`/v1/instances/${enc(id)}/exec`, {
        command,
        tty: o.tty ?? false,
        stdin: o.stdin ?? false,
        ...(o.tty && process.stdout.isTTY ? size() : {}),
      });

      // Raw mode: keys (Ctrl-C included) go to the remote terminal, not to us.
      if (interactive) process.stdin.setRawMode(true);
      const onResize = () => ws.send(frame(Channel.resize, JSON.stringify(size())));
      if (o.tty && process.stdout.isTTY) process.stdout.on('resize', onResize);
      if (o.stdin) {
        process.stdin.on('data', (d: Buffer) => ws.readyState === ws.OPEN && ws.send(frame(Channel.stdin, d)));
        process.stdin.on('end', () => ws.readyState === ws.OPEN && ws.send(frame(Channel.eof)));
      }

      let exitCode: number | undefined;
      let failure: string | undefined;
      try {
        for await (const msg of input) {
          const f = parseFrame(msg);
          if (!f) continue;
          if (f.channel === Channel.stdout) process.stdout.write(f.payload);
          else if (f.channel === Channel.stderr) process.stderr.write(f.payload);
          else if (f.channel === Channel.status) {
            const s = parseStatus(f.payload);
            if (s.exitCode !== undefined) exitCode = s.exitCode;
            if (s.error) failure = s.error.message;
          }
        }
      } finally {
        if (interactive) process.stdin.setRawMode(false);
        process.stdout.off('resize', onResize);
        process.stdin.pause();
        process.stdin.destroy();
      }
      if (failure) throw new Error(failure);
      if (exitCode === undefined) throw new Error('the connection ended before the command reported its exit code');
      process.exitCode = exitCode;
    });
}

const DETACH = 0x1d; // Ctrl-]

export function consoleCommand(): Command {
  return leaf('console', "attach to a running VM's serial console; Ctrl-] detaches")
    .argument('<instance>', 'instance name (in the current project) or id')
    .addHelpText(
      'after',
      '\nThe console is what the guest prints and reads on its serial port; the\nVM runs on when you detach. One session at a time.\n\nExample:\n  strata console vm1',
    )
    .action(async (ref: string, _o: unknown, c: Command) => {
      const ctx = ctxOf(c);
      const id = await resolveInstance(ctx, ref);
      const { ws, messages: input } = await ctx.client.socket(`/v1/instances/${enc(id)}/console`, {});
      const tty = process.stdin.isTTY === true;
      if (tty) {
        process.stdin.setRawMode(true);
        process.stderr.write('(attached to the console; Ctrl-] detaches)\r\n');
      }
      process.stdin.on('data', (d: Buffer) => {
        const cut = d.indexOf(DETACH);
        if (cut >= 0) {
          if (cut > 0) ws.send(frame(Channel.stdin, d.subarray(0, cut)));
          ws.close();
          return;
        }
        if (ws.readyState === ws.OPEN) ws.send(frame(Channel.stdin, d));
      });
      let failure: string | undefined;
      try {
        for await (const msg of input) {
          const f = parseFrame(msg);
          if (f?.channel === Channel.stdout) process.stdout.write(f.payload);
          else if (f?.channel === Channel.status) failure = parseStatus(f.payload).error?.message ?? failure;
        }
      } finally {
        if (tty) process.stdin.setRawMode(false);
        process.stdin.pause();
        process.stdin.destroy();
      }
      if (failure) throw new Error(failure);
      if (tty) process.stderr.write('\n(detached)\n');
    });
}
