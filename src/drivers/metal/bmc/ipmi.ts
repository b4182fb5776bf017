// A BMC over IPMI v2 (lanplus), through ipmitool. The password reaches
// ipmitool in its environment (-E reads IPMI_PASSWORD), never in argv where
// any user of the host could read it. -C 3 picks the cipher suite at once
// (probing costs ~10 s a call).
// IPMI runs over UDP and a BMC is a small, slow computer: requests to one BMC
// are sent one at a time (a BMC busy with one answers the next late, past
// ipmitool's wait, and then answers a request ipmitool no longer waits for);
// -N 5 -R 1 waits 5 s for an answer and asks twice, as Ironic does. A call
// the BMC fails for being busy (an answer to an earlier try, out of sessions,
// a session it did not close) is made again for up to a minute, Ironic's
// retry budget; one where nobody answers, once more. Every command sent is
// idempotent.
import { execFile, spawn } from 'node:child_process';
import { Gate } from '../../../lib/gate.ts';
import {
  BmcError,
  type Bmc,
  type BmcAddress,
  type BootDevice,
  type ConsoleSession,
  type PowerState,
} from '../types.ts';

const IPMITOOL = 'ipmitool';
/** A hard bound on one ipmitool run, beyond its own retries. */
const CALL_TIMEOUT_MS = 20_000;
/** Runs of one command nobody answers before its failure stands. */
const UNANSWERED_ATTEMPTS = 2;
/** How long a busy BMC's failures are retried, from the first try. */
const BUSY_RETRY_MS = 60_000;
/** What a busy or lossy BMC says, as opposed to a refusal. */
const TRANSIENT =
  /Request Match NOT FOUND|Node busy|insufficient resources for session|Out of space|initialization in progress|Close Session command failed/i;

/** One gate per BMC address: a request waits for the one before it (see above). */
const inFlight = new Map<string, Gate>();

async function oneAtATime<T>(bmc: string, task: () => Promise<T>): Promise<T> {
  const gate = inFlight.get(bmc) ?? new Gate(1);
  inFlight.set(bmc, gate);
  try {
    return await gate.run(task);
  } finally {
    if (gate.running === 0 && inFlight.get(bmc) === gate) inFlight.delete(bmc);
  }
}

export class IpmiBmc implements Bmc {
  readonly protocol = 'ipmi' as const;
  readonly supportsVirtualMedia = false;

  private readonly addr: BmcAddress;

  constructor(addr: BmcAddress) {
    this.addr = addr;
  }

  private args(verbose: boolean): string[] {
    const a = this.addr;
    return [
      '-I',
      'lanplus',
      '-C',
      '3',
      '-H',
      a.host,
      '-p',
      String(a.port),
      '-U',
      a.username,
      '-E',
      '-N',
      '5',
      '-R',
      '1',
      ...(verbose ? ['-v'] : []),
    ];
  }

  private get env(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', IPMI_PASSWORD: this.addr.password };
  }

  /** Runs one ipmitool command; its stdout, or a BmcError saying why not. */
  private async run(command: string[]): Promise<string> {
    const began = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await oneAtATime(`${this.addr.host}:${this.addr.port}`, () => this.runOnce(command));
      } catch (err) {
        if (!(err instanceof BmcError && err.transient)) throw err;
        const wait = Math.min(500 * attempt, 5_000);
        const again =
          err.reason === 'unreachable' ? attempt < UNANSWERED_ATTEMPTS : Date.now() + wait - began < BUSY_RETRY_MS;
        if (!again) throw err;
        await new Promise(r => setTimeout(r, wait));
      }
    }
  }

  private runOnce(command: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      // -v: ipmitool names the failed RAKP step only when verbose, and that
      // is what tells a bad password from a BMC that does not answer.
      const child = execFile(
        IPMITOOL,
        [...this.args(true), ...command],
        { env: this.env, timeout: CALL_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 },
        (err, stdout, stderr) => (err ? reject(this.failure(err, stderr)) : resolve(stdout)),
      );
      child.stdin?.end();
    });
  }

  private failure(err: Error & { code?: unknown; killed?: boolean }, stderr: string): BmcError {
    const where = `the IPMI BMC at ${this.addr.host}:${this.addr.port}`;
    if (err.code === 'ENOENT') return new BmcError('ipmitool is not installed on this host', 'failed');
    if (/RAKP 2 HMAC is invalid|unauthorized name|invalid (user name|password)|insufficient privilege/i.test(stderr))
      return new BmcError(`${where} refused the user name or password`, 'auth');
    if (err.killed || /Get Auth Capabilities error|Unable to establish IPMI v2|No response|timeout/i.test(stderr))
      return new BmcError(`${where} does not answer`, 'unreachable', true);
    const last = stderr
      .split('\n')
      .map(l => l.trim())
      .filter(l => l && !l.startsWith('Loading IANA') && !l.startsWith('>'))
      .at(-1);
    return new BmcError(
      `${where} failed: ${(last ?? 'no reason given').slice(0, 200)}`,
      'failed',
      TRANSIENT.test(stderr),
    );
  }

  async verify(): Promise<void> {
    await this.power();
  }

  async power(): Promise<PowerState> {
    const out = await this.run(['power', 'status']);
    const m = /Chassis Power is (on|off)/.exec(out);
    if (!m) throw new BmcError(`the IPMI BMC at ${this.addr.host}:${this.addr.port} gave no power state`, 'failed');
    return m[1] as PowerState;
  }

  async setPower(state: PowerState, from?: PowerState): Promise<void> {
    if ((from ?? (await this.power())) === state) return;
    await this.run(['power', state]);
  }

  async setBootDevice(device: BootDevice, persistent: boolean): Promise<void> {
    if (device === 'cd') throw new BmcError('IPMI has no virtual media to boot from', 'unsupported');
    await this.run(['chassis', 'bootdev', device, ...(persistent ? ['options=persistent'] : [])]);
  }

  async insertMedia(): Promise<void> {
    throw new BmcError('IPMI has no virtual media: use network boot', 'unsupported');
  }

  async ejectMedia(): Promise<void> {
    throw new BmcError('IPMI has no virtual media', 'unsupported');
  }

  /** Serial-over-LAN. A BMC serves one SOL session: an old one (a crashed client's) is ended first. */
  async openConsole(): Promise<ConsoleSession> {
    await this.run(['sol', 'deactivate']).catch((e: BmcError) => {
      if (e.reason !== 'failed') throw e;
    });
    // ipmitool's SOL wants a terminal (it sets raw mode, and ends without one):
    // script(1) gives it a pseudo-terminal. Its command is a constant; the
    // address and user reach it in the environment, never in the command text.
    const a = this.addr;
    const command = 'exec ipmitool -I lanplus -C 3 -H "$BMC_HOST" -p "$BMC_PORT" -U "$BMC_USER" -E sol activate';
    const child = spawn('script', ['--quiet', '--flush', '--echo', 'never', '--command', command, '/dev/null'], {
      env: { ...this.env, BMC_HOST: a.host, BMC_PORT: String(a.port), BMC_USER: a.username },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', e => reject(new BmcError(`cannot run ipmitool: ${e.message}`, 'failed')));
    });
    child.stdin.on('error', () => {});
    return {
      output: (async function* () {
        for await (const chunk of child.stdout) yield chunk as Buffer;
      })(),
      write: data => {
        if (child.stdin.writable) child.stdin.write(data);
      },
      close: () => {
        child.kill('SIGTERM');
      },
    };
  }
}
