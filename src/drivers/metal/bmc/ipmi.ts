// A BMC over IPMI v2 (lanplus), through ipmitool. The password reaches
// ipmitool in its environment (-E reads IPMI_PASSWORD), never in argv where
// any user of the host could read it. -C 3 picks the cipher suite at once
// (probing costs ~10 s a call); -N/-R bound one call to ~4 s when nobody answers.
// IPMI runs over UDP and a busy BMC answers late: a call that fails for such
// a reason (no answer, an answer to an earlier try, a BMC out of sessions, a
// session it did not close) is made again, a few times, as Ironic does; every
// command sent is idempotent.
import { execFile, spawn } from 'node:child_process';
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
/** Runs of one command before its failure stands. */
const ATTEMPTS = 3;
/** What a busy or lossy BMC says, as opposed to a refusal. */
const TRANSIENT =
  /Request Match NOT FOUND|Node busy|insufficient resources for session|Out of space|initialization in progress|Close Session command failed/i;

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
      '2',
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
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.runOnce(command);
      } catch (err) {
        if (attempt >= ATTEMPTS || !(err instanceof BmcError && err.transient)) throw err;
        await new Promise(r => setTimeout(r, 500 * attempt));
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
