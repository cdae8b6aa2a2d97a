/**
 * Cheap deterministic bytes for tests that need many of them (fast-check generates the seed).
 *
 * @module
 */

/** `length` pseudo-random bytes from `seed` (xorshift32). */
export function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** `length` bytes that compress well: short lines of text, numbered from `seed`. */
export function compressibleBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const encoder = new TextEncoder();
  let at = 0;
  for (let row = seed; at < length; row++) {
    const line = encoder.encode(`row ${row}: the quick brown fox jumps over the lazy dog\n`);
    out.set(line.subarray(0, length - at), at);
    at += line.length;
  }
  return out;
}
