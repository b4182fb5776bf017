// Resource ids: a type prefix and a ULID-style 26-character body (48-bit
// millisecond time, 80 random bits, Crockford base32, lower case), so ids sort
// by creation time and cursor pagination can page by id alone. Within one
// millisecond the random part is incremented, keeping ids strictly increasing
// in this process. Randomness is drawn from a pooled buffer: one getrandom
// call per 409 ids instead of one per id.
import { randomFillSync } from 'node:crypto';

export type IdPrefix = 'prj' | 'usr' | 'tok' | 'jtk' | 'hst' | 'ins' | 'grp' | 'sec' | 'dep';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const RANDOM_BYTES = 10;
const pool = Buffer.alloc(RANDOM_BYTES * 409);
let poolAt = pool.length;
let lastTime = -1;
const last = new Uint8Array(RANDOM_BYTES);

function freshRandom(): void {
  if (poolAt + RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  pool.copy(last, 0, poolAt, poolAt + RANDOM_BYTES);
  poolAt += RANDOM_BYTES;
}

function increment(): void {
  for (let i = RANDOM_BYTES - 1; i >= 0; i--) {
    if (last[i] !== 0xff) {
      last[i]! += 1;
      return;
    }
    last[i] = 0;
  }
}

function encode(time: number): string {
  let out = '';
  let t = time;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  // 80 random bits -> 16 base32 characters, 5 bits at a time.
  let bits = 0;
  let acc = 0;
  for (const byte of last) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

export function newId(prefix: IdPrefix): string {
  const time = Date.now();
  if (time > lastTime) {
    lastTime = time;
    freshRandom();
  } else {
    increment();
  }
  return `${prefix}_${encode(lastTime)}`;
}

export function hasPrefix(value: string, prefix: IdPrefix): boolean {
  return value.startsWith(`${prefix}_`) && value.length === prefix.length + 27;
}
