// Processes inside a simulated workload: a handful of built-in commands, so
// exec, exec health checks and the console have something real to talk to.
//
//   echo WORDS...   prints the words; exit 0
//   cat             copies its input to its output until the input is closed; exit 0
//   sleep SECONDS   waits; exit 0
//   true / false    exit 0 / 1
//   exit CODE       exit CODE
//   anything else   "COMMAND: command not found" on stderr; exit 127 (like a shell)
import type { ExecSession } from '../driver.ts';
import { line, Pipe } from './pipe.ts';

class SimSession implements ExecSession {
  readonly output = new Pipe();
  private readonly exit: Promise<number>;
  private finish!: (code: number) => void;
  private echoInput = false;
  private timer: NodeJS.Timeout | undefined;

  constructor() {
    this.exit = new Promise(resolve => (this.finish = resolve));
  }

  done(code: number): void {
    clearTimeout(this.timer);
    this.output.end();
    this.finish(code);
  }

  /** Input is copied to the output until it is closed. */
  echo(): void {
    this.echoInput = true;
  }

  after(ms: number, code: number): void {
    this.timer = setTimeout(() => this.done(code), ms);
  }

  write(data: Buffer): void {
    if (this.echoInput) this.output.push({ stream: 'stdout', data });
  }

  closeStdin(): void {
    if (this.echoInput) this.done(0);
  }

  async resize(): Promise<void> {}

  exitCode(): Promise<number> {
    return this.exit;
  }

  close(): void {
    this.done(137);
  }
}

export function simExec(command: string[]): ExecSession {
  const s = new SimSession();
  const [program = '', ...args] = command;
  if (program === 'echo') {
    s.output.push(line('stdout', args.join(' ')));
    s.done(0);
  } else if (program === 'cat' && args.length === 0) {
    s.echo();
  } else if (program === 'sleep' && args.length === 1 && Number(args[0]) >= 0) {
    s.after(Number(args[0]) * 1000, 0);
  } else if (program === 'true' || program === 'false') {
    s.done(program === 'true' ? 0 : 1);
  } else if (program === 'exit' && /^\d+$/.test(args[0] ?? '')) {
    s.done(Number(args[0]) & 255);
  } else {
    s.output.push(line('stderr', `${program}: command not found`));
    s.done(127);
  }
  return s;
}

/** A simulated machine's serial console: a login prompt, then it echoes what is typed. */
export function simConsole(name: string): ExecSession {
  const s = new SimSession();
  s.output.push({ stream: 'stdout', data: Buffer.from(`\r\n${name} login: `) });
  s.echo();
  return s;
}
