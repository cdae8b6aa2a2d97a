/**
 * The replication lease: one small object per database (`dbs/<name>/lease`) naming the replicator that
 * publishes it, renewed while it runs. A second replicator for the same database, on another host or in
 * another process, finds a live lease that is not its own and refuses to start instead of interleaving
 * history. S3-compatible servers may ignore conditional writes, so taking a lease is write-then-read-back;
 * the pointer check at every publish (`publish.ts`) catches what a lost race lets through.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { leaseKey } from "../manifest/keys.ts";
import type { BlobStore } from "../store/types.ts";
import { alive } from "./spool.ts";

/** What a lease object holds (JSON). */
export interface LeaseBody {
  version: 1;
  /** The replicator's writer id (the pointer's writer field). */
  writer: string;
  hostname: string;
  pid: number;
  /** The database file the replicator reads. */
  path: string;
  acquiredMs: number;
  renewedMs: number;
  ttlMs: number;
}

/** Who asks for the lease. */
export interface LeaseHolder {
  writer: string;
  hostname: string;
  pid: number;
  path: string;
}

/** Reads the lease of `name` in `store`; undefined when there is none or it cannot be parsed. */
export async function readLease(
  store: BlobStore,
  name: string,
  signal?: AbortSignal,
): Promise<LeaseBody | undefined> {
  const got = await store.get(leaseKey(name), { signal });
  if (got.status !== "ok") return undefined;
  try {
    const body = JSON.parse(new TextDecoder().decode(got.body)) as LeaseBody;
    return body.version === 1 && typeof body.writer === "string" ? body : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `lease` still keeps others out at `nowMs`. */
export function leaseLive(lease: LeaseBody, me: LeaseHolder, nowMs: number = Date.now()): boolean {
  if (nowMs - lease.renewedMs >= lease.ttlMs) return false;
  // On this host, a lease whose process is gone (killed, crashed) is free at once.
  if (lease.hostname === me.hostname && lease.pid !== me.pid && !alive(lease.pid)) return false;
  return true;
}

/**
 * Takes (or renews) the lease of `name` in `store` for `me`. Throws `LEASE_HELD` naming the holder when
 * another live replicator has it, unless `takeOver`.
 */
export async function acquireLease(
  store: BlobStore,
  name: string,
  me: LeaseHolder,
  options: {
    ttlMs: number;
    takeOver?: boolean | undefined;
    signal?: AbortSignal | undefined;
    confirmDelayMs?: number | undefined;
  },
): Promise<LeaseBody> {
  const current = await readLease(store, name, options.signal);
  // The writer id belongs to one spool, which one process at a time holds (owner.json): a lease with our
  // writer id is ours, whatever pid a crashed earlier run had.
  const mine = current !== undefined && current.writer === me.writer;
  if (current && !mine && !options.takeOver && leaseLive(current, me)) {
    throw heldError(store, name, current, ONE_REPLICATOR);
  }
  const now = Date.now();
  const body: LeaseBody = {
    version: 1,
    ...me,
    acquiredMs: mine ? current.acquiredMs : now,
    renewedMs: now,
    ttlMs: options.ttlMs,
  };
  await store.put(leaseKey(name), new TextEncoder().encode(JSON.stringify(body)), { signal: options.signal });
  if (!mine) {
    // Two replicators that read "free" at once both write; the later write wins and the other sees it here.
    await new Promise((resolve) => setTimeout(resolve, options.confirmDelayMs ?? 250));
    const after = await readLease(store, name, options.signal);
    if (after && after.writer !== me.writer) {
      throw heldError(store, name, after, ONE_REPLICATOR);
    }
  }
  return body;
}

/** Renews the lease; throws `LEASE_HELD` when another replicator took it meanwhile. */
export async function renewLease(
  store: BlobStore,
  name: string,
  me: LeaseHolder,
  options: { ttlMs: number; signal?: AbortSignal | undefined },
): Promise<void> {
  const current = await readLease(store, name, options.signal);
  if (current && current.writer !== me.writer) {
    throw heldError(store, name, current, ONE_REPLICATOR);
  }
  const now = Date.now();
  const body: LeaseBody = {
    version: 1,
    ...me,
    acquiredMs: current?.acquiredMs ?? now,
    renewedMs: now,
    ttlMs: options.ttlMs,
  };
  await store.put(leaseKey(name), new TextEncoder().encode(JSON.stringify(body)), { signal: options.signal });
}

/** Deletes the lease if it is still `me`'s. */
export async function releaseLease(store: BlobStore, name: string, me: LeaseHolder): Promise<void> {
  const current = await readLease(store, name);
  if (current && current.writer === me.writer) await store.delete(leaseKey(name));
}

/**
 * Throws `LEASE_HELD` when a live replicator other than `me` holds the lease of `name` in `store`: what a
 * one-off writer (`tessera sync`) checks before publishing, so it does not move a pointer under a running
 * replicator.
 */
export async function refuseIfLeased(
  store: BlobStore,
  name: string,
  me: LeaseHolder,
  signal?: AbortSignal,
): Promise<void> {
  const current = await readLease(store, name, signal);
  if (current && current.writer !== me.writer && leaseLive(current, me)) {
    throw heldError(
      store,
      name,
      current,
      "Publish through it instead (tessera flush), or stop it first",
      "sync",
    );
  }
}

const ONE_REPLICATOR = "Run one replicator per database: stop that one, or wait until its lease lapses " +
  "after it stops, or pass --take-over if it is gone for good";

function heldError(
  store: BlobStore,
  name: string,
  lease: LeaseBody,
  advice: string,
  doing = "replicate",
): TesseraError {
  const renewed = new Date(lease.renewedMs).toISOString();
  return new TesseraError(
    "LEASE_HELD",
    `Cannot ${doing} database "${name}" to ${store.description}: replicator ${lease.writer} (pid ${lease.pid} ` +
      `on host ${lease.hostname}, reading ${lease.path}) holds its lease, last renewed ${renewed} for ` +
      `${Math.ceil(lease.ttlMs / 1000)} s. ${advice}`,
  );
}
