/**
 * One check of a database's pointer, as a replica's poller runs it: a conditional read of the pointer, and
 * the manifest it names when that is newer than the newest snapshot the replica holds.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";
import { type LoadedManifest, loadPointed, pollPointer } from "../manifest/catalog.ts";
import { pointerKey } from "../manifest/keys.ts";
import type { Pointer } from "../manifest/types.ts";
import type { BlobStore } from "../store/types.ts";

/** How long a check waits for the pointer or a manifest. */
const SMALL_READ_TIMEOUT_MS = 10_000;

/** A pointer already read, with its ETag, and the manifest it names: the snapshot a replica of a database
 * opens on, when whoever chose the store read them already. */
export interface FirstSnapshot {
  pointer: Pointer;
  etag: string | undefined;
  loaded: LoadedManifest;
}

/** The newest snapshot a replica holds, as the pointer is compared with it. */
export interface HeldPointer {
  /** Its sequence; 0 when none is held. */
  sequence: number;
  /** The hex SHA-256 of its manifest, as its pointer named it; "" when none is held. */
  manifestSha: string;
}

/** What a check found. */
export type PointerCheck =
  /** The store answered that the pointer did not change since `etag` (a 304). */
  | { status: "not_modified" }
  /** The pointer still names the snapshot held. */
  | { status: "unchanged"; etag: string | undefined }
  /** The pointer names a newer snapshot, whose manifest was loaded and verified. */
  | { status: "newer"; etag: string | undefined; manifestSha: string; loaded: LoadedManifest };

/** Options of {@linkcode checkPointer}. */
export interface CheckPointerOptions {
  /** The ETag of the pointer read last, for a conditional read. */
  etag: string | undefined;
  /** The pointer and manifest, read already: they are not read again. */
  first?: FirstSnapshot | undefined;
  signal: AbortSignal;
}

/**
 * Reads the pointer of database `name` in `store` and compares it with what the replica holds (`held` is
 * asked once the pointer is read). Throws `NOT_FOUND` when the store has no pointer, and `CONFLICT` when it
 * names an older snapshot than the one held: a replica never moves back.
 */
export async function checkPointer(
  store: BlobStore,
  name: string,
  held: () => HeldPointer,
  options: CheckPointerOptions,
): Promise<PointerCheck> {
  const { first } = options;
  const key = pointerKey(name);
  // The pointer and the manifest are small: one that takes longer than this is a hung request, and the
  // next poll should try again rather than wait out the store's idle timeout.
  const small = AbortSignal.any([options.signal, AbortSignal.timeout(SMALL_READ_TIMEOUT_MS)]);
  const got = first
    ? { status: "ok" as const, pointer: first.pointer, etag: first.etag }
    : await pollPointer(store, name, { etag: options.etag, signal: small });
  if (got.status === "not_modified") return { status: "not_modified" };
  if (got.status === "not_found") {
    throw new TesseraError(
      "NOT_FOUND",
      `No snapshot of database "${name}" in ${store.description}: ${key} is missing (run \`tessera sync\` ` +
        `first, or check the database's name)`,
    );
  }
  const { pointer } = got;
  const manifestSha = toHex(pointer.manifestSha256);
  const { sequence: newest, manifestSha: newestSha } = held();
  if (pointer.sequence === newest && manifestSha === newestSha) {
    return { status: "unchanged", etag: got.etag };
  }
  if (pointer.sequence <= newest) {
    throw new TesseraError(
      "CONFLICT",
      `Not moving replica "${name}" back: ${key} in ${store.description} names snapshot ${pointer.sequence}, ` +
        `but snapshot ${newest} was already served; still serving ${newest}`,
    );
  }
  const loaded = first?.loaded ?? await loadPointed(store, name, pointer, { signal: small });
  return { status: "newer", etag: got.etag, manifestSha, loaded };
}

/** The error to report for a failed check: a read that timed out becomes `HTTP_REQUEST_FAILED`. */
export function checkFailure(thrown: unknown, store: BlobStore, name: string): unknown {
  if (!(thrown instanceof DOMException && thrown.name === "TimeoutError")) return thrown;
  return new TesseraError(
    "HTTP_REQUEST_FAILED",
    `Cannot check replica "${name}": ${store.description} did not answer within ${SMALL_READ_TIMEOUT_MS} ms`,
    { cause: thrown },
  );
}
