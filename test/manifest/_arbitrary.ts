/**
 * fast-check arbitraries for valid manifests and pointers.
 *
 * @module
 */

import fc from "fast-check";
import { deriveName } from "../../src/manifest/naming.ts";
import type { ChunkList, Manifest, Pointer } from "../../src/manifest/types.ts";
import { randomBytes } from "../chunk/_random.ts";

/** Derived names, some of them shortened, from hosts and paths in several scripts. */
export const DERIVED_NAMES: string[] = await Promise.all([
  deriveName("db1", "/srv/app.db"),
  deriveName("hôte-😀", "/données/日本語/app.db"),
  deriveName("h", `/${"répertoire/".repeat(30)}x.db`),
  deriveName("[::1]:8080", `/${"a".repeat(300)}`),
]);

/** Records with the usual prototype, as decoders return them. */
const plain = { noNullPrototype: true } as const;
const unicode = (maxLength: number) => fc.string({ unit: "binary", maxLength, size: "max" });
const id = fc.integer().map((seed) => randomBytes(32, seed));
const powerOfTwo = (minLog: number, maxLog: number) =>
  fc.integer({ min: minLog, max: maxLog }).map((n) => 2 ** n);

const identity = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}$/).chain((name) =>
    unicode(30).map((sourcePath) => ({ name, hostname: "", sourcePath }))
  ),
  fc.record(
    { name: fc.constantFrom(...DERIVED_NAMES), hostname: unicode(30), sourcePath: unicode(60) },
    plain,
  ),
);

/** The shape of an image: page and chunk sizes, and a length that makes `chunks` chunks in all. */
export function imageShape(maxChunks: number) {
  return fc.record({ pageLog: fc.integer({ min: 9, max: 16 }), chunkLog: fc.integer({ min: 12, max: 20 }) })
    .chain(({ pageLog, chunkLog }) => {
      const pageSize = 2 ** pageLog;
      const chunkSize = 2 ** Math.max(pageLog, chunkLog);
      return fc.record({
        pageSize: fc.constant(pageSize),
        chunkSize: fc.constant(chunkSize),
        chunks: fc.integer({ min: 0, max: maxChunks }),
        tailPages: fc.integer({ min: 1, max: chunkSize / pageSize }),
      });
    })
    .map(({ pageSize, chunkSize, chunks, tailPages }) => ({
      pageSize,
      chunkSize,
      imageLength: chunks === 0 ? 0 : (chunks - 1) * chunkSize + tailPages * pageSize,
    }));
}

function chunkList(count: number): fc.Arbitrary<ChunkList> {
  const inline = fc.constant(null).map(() => ({
    kind: "inline" as const,
    ids: Array.from({ length: count }, (_, i) => randomBytes(32, count * 7 + i)),
  }));
  const indexed = powerOfTwo(6, 15).chain((fanout) =>
    fc.array(id, { minLength: Math.ceil(count / fanout), maxLength: Math.ceil(count / fanout) })
      .map((indexIds) => ({ kind: "indexed" as const, count, fanout, indexIds }))
  );
  return count <= 600 ? fc.oneof(inline, indexed) : indexed;
}

/** Any valid manifest: both list kinds, chosen and derived names, any unicode host and path. */
export const manifestArb: fc.Arbitrary<Manifest> = fc.oneof(imageShape(40), imageShape(100000))
  .chain((shape) =>
    fc.record({
      identity,
      sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      createdMs: fc.maxSafeInteger(),
      sourceMtimeMs: fc.maxSafeInteger(),
      pageSize: fc.constant(shape.pageSize),
      imageLength: fc.constant(shape.imageLength),
      chunkSize: fc.constant(shape.chunkSize),
      imageSha256: id,
      chunk0: fc.tuple(fc.integer(), fc.boolean()).map(([seed, zeros]) => {
        const length = Math.min(shape.chunkSize, shape.imageLength);
        return zeros ? new Uint8Array(length) : randomBytes(length, seed);
      }),
      chunks: chunkList(Math.max(0, Math.ceil(shape.imageLength / shape.chunkSize) - 1)),
    }, plain)
  )
  .chain((m) => fc.tuple(fc.boolean(), fc.integer()).map(([v2, seed]) => (v2 ? formatTwo(m, seed) : m)));

/** `m` as format 2 writes it: an image digest, and an inline list's chunks in up to three packs. */
function formatTwo(m: Manifest, seed: number): Manifest {
  const packs = [0, 1, 2].map((k) => randomBytes(32, seed + k));
  const chunks: ChunkList = m.chunks.kind === "inline"
    ? {
      ...m.chunks,
      locations: m.chunks.ids.map((_, i) =>
        i % 4 === 3
          ? undefined
          : { pack: packs[i % 3]!, packLength: 1 << 30, offset: 24 + i * 100, length: 12 + (i % 50) }
      ),
    }
    : m.chunks;
  return { version: 2, ...m, imageDigest: randomBytes(32, seed - 1), chunks };
}

/** Any valid pointer, with writers up to the 255-byte limit. */
export const pointerArb: fc.Arbitrary<Pointer> = fc.record({
  sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  manifestSha256: id,
  createdMs: fc.maxSafeInteger(),
  writer: fc.oneof(unicode(63), fc.constant("w".repeat(255)), fc.constant("é".repeat(127))),
}, plain);
