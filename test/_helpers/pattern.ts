/**
 * Test bytes with no `node:` import, so suites that run in the browser use them too.
 *
 * @module
 */

/** Bytes that differ for every seed and do not compress, so a test can tell which write won. */
export function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}
