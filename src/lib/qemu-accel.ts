// Which accelerator QEMU should use on this host, shared by the VM driver and
// the bare-metal test rig. KVM only when a guest really boots under it: some
// hosts have a /dev/kvm that cannot run guests (a PVM-backed one fails on MSRs).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export type Accelerator = 'kvm' | 'tcg';

/** The TCG translation cache, MiB: QEMU 7.2 reserves 1 GiB by default, 128 is as fast here. */
export const TCG_CACHE_MIB = 128;

/** `-accel` and `-cpu` for an accelerator. */
export function accelArgs(accel: Accelerator): string[] {
  return ['-accel', accel === 'kvm' ? 'kvm' : `tcg,tb-size=${TCG_CACHE_MIB}`, '-cpu', accel === 'kvm' ? 'host' : 'max'];
}

/**
 * True when QEMU, run with `argv` (which must select KVM and send the serial
 * console to stdout), prints `marker` within `timeoutMs`. QEMU is killed either way.
 */
export function kvmBoots(qemu: string, argv: string[], marker: string, timeoutMs = 20_000): Promise<boolean> {
  if (!existsSync('/dev/kvm')) return Promise.resolve(false);
  return new Promise<boolean>(resolve => {
    const child = spawn(qemu, argv, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out = (out + d.toString('latin1')).slice(-64 * 1024);
      if (out.includes(marker)) done(true);
    });
    child.once('exit', () => done(out.includes(marker)));
    child.once('error', () => done(false));
  });
}
