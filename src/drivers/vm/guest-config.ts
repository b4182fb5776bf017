// The instance's settings for the guest init (guest/init), written to a small
// raw disk the guest finds by its serial number: a shell fragment it sources.
// Every value is single-quoted, so no spec can inject shell into the guest.

export interface GuestConfig {
  hostname: string;
  /** run: the command in the root disk, like a container; init: the image's own init. */
  mode: 'run' | 'init';
  command: string[];
  env: Record<string, string>;
  workingDir: string;
  /** address/prefix and gateway, when the guest is on a host bridge */
  ip?: string | undefined;
  gateway?: string | undefined;
  probe?: boolean;
}

export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const BLOCK = 512;

export function guestConfig(c: GuestConfig): string {
  const lines = [
    '#strata-config',
    `STRATA_MODE=${shq(c.mode)}`,
    `STRATA_HOSTNAME=${shq(c.hostname)}`,
    `STRATA_WORKDIR=${shq(c.workingDir)}`,
  ];
  if (c.ip) lines.push(`STRATA_IP=${shq(c.ip)}`, `STRATA_GATEWAY=${shq(c.gateway ?? '')}`);
  if (c.probe) lines.push('STRATA_PROBE=1');
  // env -i: the process sees exactly the instance's environment, as in a container.
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', ...c.env };
  // Each NAME=value is one quoted word for env(1), names included: an image's
  // environment may name a variable anything, and no name reaches the shell.
  const assignments = Object.entries(env).map(([k, v]) => shq(`${k}=${v}`));
  // exec: the background job the init starts becomes the command itself, so
  // the power button's SIGTERM reaches the command, not a shell around it.
  // chroot(1) always moves to /, so the init's own busybox (copied to the
  // guest's /dev, which is not the image's) changes to the working dir first:
  // images without a shell run the same.
  const argv = [c.workingDir || '/', ...c.command].map(shq).join(' ');
  lines.push(
    `strata_command() { exec env -i ${assignments.join(' ')} chroot /newroot /dev/.strata/busybox sh -c 'cd "$0" && exec "$@"' ${argv}; }`,
  );
  return `${lines.join('\n')}\n`;
}

/** The config as disk content: whole sectors, NUL-padded (the guest strips NULs). */
export function guestConfigDisk(c: GuestConfig): Buffer {
  const text = Buffer.from(guestConfig(c));
  const size = Math.max(BLOCK * 8, Math.ceil(text.length / BLOCK) * BLOCK);
  const buf = Buffer.alloc(size);
  text.copy(buf);
  return buf;
}
