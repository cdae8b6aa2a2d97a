/**
 * Kill -9 of the `tessera replicate` process at random moments while a real writer process commits, many
 * times over, restarting it after each kill. After every kill the store must be consistent: the pointer
 * names a manifest that exists and matches its hash, whose chunks (data and index) all exist and decode to
 * their ids, and that restores to a committed state of the writer; every manifest in the store is complete.
 * At the end the writer stops, one more run flushes on SIGTERM, and the newest snapshot holds the writer's
 * last commit: the next run publishes what a killed one left.
 *
 * Kill moments come from a seeded generator; the seed is printed, and `TESSERA_CRASH_SEED=N` replays a run's
 * choices (the processes' own timing still varies).
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { decodePointer } from "../../src/manifest/codec.ts";
import { pointerKey } from "../../src/manifest/keys.ts";
import { referencedKeys } from "../_helpers/stored.ts";
import type { Manifest, Pointer } from "../../src/manifest/types.ts";
import { listHistory, loadPointed, loadSequence } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { LocalStore } from "../../src/store/local.ts";
import { S3Store } from "../../src/store/s3.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { NodeProcess } from "../_helpers/_node_process.ts";
import { type FaultProxy, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { isDeno, ROOT } from "../_helpers/run.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { checkWriterDb, isCommittedState } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { startWriter } from "../_helpers/writer.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const SEED = Number(process.env.TESSERA_CRASH_SEED ?? Date.now() % 2 ** 31);
console.log(`crash_test: seed ${SEED} (replay with TESSERA_CRASH_SEED=${SEED})`);

/** mulberry32: a small seeded generator of numbers in [0, 1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// s3rver writes an object's file in place as the body streams in, so a PUT cut off mid-body (its client
// killed) leaves a truncated object that later reads and HEADs find; real S3 stores an object only once its
// whole body arrived. This shim in front of s3rver forwards a request only once its body arrived whole, so
// the store behaves as S3 does there. (Reads racing an overwrite are handled in readPointer.)
const ATOMIC_PUT_SHIM = `
const http = require("node:http");
const target = new URL(process.argv[1]);
const agent = new http.Agent({ keepAlive: true });
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("error", () => {});
  req.on("end", () => {
    const up = http.request({ hostname: target.hostname, port: target.port, method: req.method, path: req.url,
      headers: req.headers, agent }, (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on("error", () => res.destroy());
    up.end(Buffer.concat(chunks));
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
`;

async function startAtomicShim(target: string): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const child = new NodeProcess("atomic PUT shim", ["-e", ATOMIC_PUT_SHIM, target]);
  const { port } = await child.readyLine();
  child.unref();
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.stop() };
}

type CliEvent = Record<string, unknown> & { event: string };

/** A running `tessera replicate --json` process. */
interface ReplicateProcess {
  readonly events: CliEvent[];
  readonly stderr: () => string;
  /** Resolves with the next event of `type`, or rejects when the process exits first. */
  next(type: string, timeoutMs?: number): Promise<CliEvent>;
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill(signal: "SIGKILL" | "SIGTERM"): void;
}

function startReplicate(args: string[], env: Record<string, string>): ReplicateProcess {
  const script = "src/cli/main.ts";
  const argv = ["replicate", ...args, "--json"];
  const child: ChildProcess = spawn(
    process.execPath,
    isDeno ? ["run", "-A", script, ...argv] : [script, ...argv],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const events: CliEvent[] = [];
  const waiters: { type: string; from: number; resolve: (e: CliEvent) => void }[] = [];
  let stderr = "";
  let partial = "";
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  child.stderr?.on("data", (d: Uint8Array) => (stderr = (stderr + new TextDecoder().decode(d)).slice(-8000)));
  child.stdout?.on("data", (d: Uint8Array) => {
    partial += new TextDecoder().decode(d);
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      events.push(JSON.parse(line) as CliEvent);
    }
    for (const w of [...waiters]) {
      const found = events.slice(w.from).find((e) => e.event === w.type);
      if (found) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(found);
      }
    }
  });
  return {
    events,
    stderr: () => stderr,
    exited,
    // Not child.kill(): Deno's ChildProcess then reports the signal it sent as the exit cause, even when the
    // child handled it and exited 0.
    kill: (signal) => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, signal);
    },
    next(type, timeoutMs = 30_000) {
      const from = events.length;
      return new Promise<CliEvent>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no "${type}" event in ${timeoutMs} ms: ${stderr}`)),
          timeoutMs,
        );
        waiters.push({
          type,
          from,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`tessera replicate exited (${code ?? signal}) before "${type}": ${stderr}`));
        });
      });
    },
  };
}

/** What one check of the store found. */
interface StoreCheck {
  pointer: number;
  /** The writer's last commit in the snapshot the pointer names. */
  last: number;
  /** Manifests in the store newer than the pointer: a kill landed between a manifest and its pointer. */
  ahead: number;
  /** Manifests in the store. */
  manifests: number;
  /** Pointer reads that found a half-written object (s3rver only; see readPointer). */
  tornReads: number;
}

// s3rver overwrites an object in place, so a read racing a pointer write can see it half-written; real S3
// replaces objects atomically. Only that is tolerated: a pointer that still fails to decode after a few
// tries fails the test.
async function readPointer(store: BlobStore, name: string): Promise<{ pointer?: Pointer; torn: number }> {
  let torn = 0;
  for (;;) {
    const got = await store.get(pointerKey(name));
    if (got.status !== "ok") return { torn };
    try {
      return { pointer: await decodePointer(got.body), torn };
    } catch (error) {
      if (++torn >= 10) throw error;
      await sleep(50);
    }
  }
}

async function restoreAndCheck(store: BlobStore, manifest: Manifest, dir: string): Promise<number> {
  const out = join(dir, `check-${manifest.sequence}-${crypto.randomUUID().slice(0, 6)}.db`);
  // restoreImage checks every data and index chunk against its id, and the image's SHA-256 when present.
  await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  const state = await checkWriterDb(out);
  assert.equal(state.integrity, "ok", `snapshot ${manifest.sequence} passes integrity_check`);
  assert.ok(
    isCommittedState(state),
    `snapshot ${manifest.sequence} is a committed state: ${JSON.stringify(state)}`,
  );
  return state.last;
}

/**
 * Checks the store is consistent. Manifests already found complete (`complete`) are not checked again:
 * they are immutable and chunks are never deleted. `random` picks one new manifest to restore in full.
 */
async function checkStore(
  store: BlobStore,
  name: string,
  dir: string,
  complete: Set<number>,
  random: () => number,
): Promise<StoreCheck> {
  const { pointer, torn } = await readPointer(store, name);
  const history = await listHistory(store, name);
  const fresh = history.filter((e) => !complete.has(e.sequence));
  const pick = fresh[Math.floor(random() * fresh.length)]?.sequence;
  for (const entry of fresh) {
    // A manifest object exists only once its chunks do: no half-published manifest.
    const { manifest } = await loadSequence(store, name, entry.sequence);
    const missing: string[] = [];
    for (const key of await referencedKeys(store, manifest)) {
      if ((await store.head(key)).status !== "ok") missing.push(key);
    }
    assert.deepEqual(missing, [], `manifest ${entry.sequence} is complete`);
    if (entry.sequence === pick && entry.sequence !== pointer?.sequence) {
      await restoreAndCheck(store, manifest, dir);
    }
    complete.add(entry.sequence);
  }
  if (!pointer) {
    return { pointer: 0, last: 0, ahead: history.length, manifests: history.length, tornReads: torn };
  }
  // loadPointed checks the manifest's SHA-256 against the pointer.
  const { manifest } = await loadPointed(store, name, pointer);
  const last = await restoreAndCheck(store, manifest, dir);
  return {
    pointer: pointer.sequence,
    last,
    ahead: history.filter((e) => e.sequence > pointer.sequence).length,
    manifests: history.length,
    tornReads: torn,
  };
}

interface CrashCase {
  mode: "wal" | "delete";
  rounds: number;
  /** The --store argument, the environment for it, and the store the checks read. */
  target: () => { store: string; env: Record<string, string>; check: BlobStore };
  /** How long after the start (or a capture) kills may land, in ms. */
  killWindowMs: number;
  /** Runs before the last, flushing run. */
  beforeFinal?: () => Promise<void>;
}

async function crashRounds(work: string, c: CrashCase, random: () => number): Promise<void> {
  await mkdir(work, { recursive: true });
  const db = join(work, "app.db");
  const name = `crash-${c.mode}`;
  const { store, env, check } = c.target();
  const args = [
    db,
    "--store",
    store,
    "--name",
    name,
    "--hostname",
    "crash-host",
    "--spool",
    join(work, "spool"),
    "--debounce-ms",
    "20",
    "--max-delay-ms",
    "100",
    "--poll-ms",
    "50",
  ];
  const writer = await startWriter(db, { mode: c.mode, pauseMs: 10, payload: 3000 });
  let writerStopped = false;
  const complete = new Set<number>();
  let previous = { pointer: 0, last: 0 };
  let aheadKills = 0;
  let midPublishKills = 0;
  let tornReads = 0;
  try {
    await writer.waitFor(10);
    for (let round = 1; round <= c.rounds; round++) {
      const child = startReplicate(args, env);
      try {
        await child.next("started");
        // Three kinds of moment in turn: any time; shortly after a capture, while it is being published;
        // just after a publish, when the next image's chunks, manifest or pointer may be in flight.
        if (round % 3 === 1) {
          await sleep(Math.floor(random() * c.killWindowMs));
        } else if (round % 3 === 2) {
          const captures = 1 + Math.floor(random() * 3);
          for (let i = 0; i < captures; i++) await child.next("captured");
          await sleep(Math.floor(random() * 100));
        } else {
          await child.next("published");
          await sleep(Math.floor(random() * 80));
        }
      } catch (error) {
        child.kill("SIGKILL");
        throw error;
      }
      child.kill("SIGKILL");
      const { signal } = await child.exited;
      assert.equal(signal, "SIGKILL", `round ${round}: killed, not exited on its own: ${child.stderr()}`);
      const fatal = child.events.find((e) => e.event === "fatal");
      assert.equal(fatal, undefined, `round ${round}: no fatal error: ${JSON.stringify(fatal)}`);
      const captured = child.events.filter((e) => e.event === "captured").map((e) => e.sequence as number);
      const published = child.events.filter((e) => e.event === "published").map((e) => e.sequence as number);
      if (captured.some((s) => !published.includes(s))) midPublishKills++;
      // Requests the killed process left inside the proxy's delay still land: let them, then check.
      await sleep(300);
      const found = await checkStore(check, name, work, complete, random);
      tornReads += found.tornReads;
      if (found.ahead > 0) aheadKills++;
      assert.ok(found.pointer >= previous.pointer, `round ${round}: the pointer never goes back`);
      assert.ok(found.last >= previous.last, `round ${round}: the published state never goes back`);
      previous = found;
    }
    assert.ok(previous.pointer > 0, "something was published across the rounds");

    const last = await writer.stop();
    writerStopped = true;
    await c.beforeFinal?.();
    const final = startReplicate([...args, "--shutdown-timeout-ms", "60000"], env);
    await final.next("started");
    final.kill("SIGTERM");
    const exit = await final.exited;
    assert.equal(exit.code, 0, `SIGTERM flushes and exits 0 (${JSON.stringify(exit)}): ${final.stderr()}`);
    const summary = final.events.find((e) => e.event === "exit");
    assert.equal(summary?.flushed, true, `the last run published everything: ${JSON.stringify(summary)}`);
    const found = await checkStore(check, name, work, complete, random);
    assert.equal(found.ahead, 0, "no manifest lies ahead of the pointer once flushed");
    assert.equal(found.last, last, "the newest snapshot holds the writer's last commit");
    const rest = final.events.filter((e) => e.event === "published").length;
    console.log(
      `crash_test ${c.mode}: ${c.rounds} kills, ${midPublishKills} with a capture unpublished, ` +
        `${aheadKills} left a manifest ahead of the pointer, ${found.manifests} manifests, pointer at ` +
        `${found.pointer}, last commit ${last}; the last run published ${rest} left behind` +
        (tornReads > 0 ? `, ${tornReads} torn pointer reads` : ""),
    );
  } finally {
    if (!writerStopped) await writer.stop().catch(() => 0);
  }
}

describe("tessera replicate killed with SIGKILL at random moments", () => {
  let server: S3TestServer;
  let shim: { endpoint: string; stop: () => Promise<void> };
  let proxy: FaultProxy;
  let dir: string;
  const random = seeded(SEED);

  before(async () => {
    dir = await makeTempDir("repl-crash");
    server = await startS3Server();
    shim = await startAtomicShim(server.endpoint);
    proxy = await startFaultProxy(shim.endpoint);
  });
  after(async () => {
    await proxy?.stop();
    await shim?.stop();
    await server?.stop();
    await removeDir(dir);
  });

  it("leaves a directory store consistent after every kill of a WAL database's replicator", async () => {
    const work = join(dir, "local");
    await crashRounds(work, {
      mode: "wal",
      rounds: 12,
      killWindowMs: 1500,
      target: () => ({ store: join(work, "store"), env: {}, check: new LocalStore(join(work, "store")) }),
    }, random);
  });

  it("leaves s3rver consistent after every kill mid-upload of a rollback-journal database's replicator", async () => {
    const work = join(dir, "s3");
    // Every request waits in the proxy, so kills land while chunks, manifests and pointers are in flight.
    await proxy.setRules([{ fault: "delay", delayMs: 40 }]);
    try {
      await crashRounds(work, {
        mode: "delete",
        rounds: 9,
        killWindowMs: 2500,
        // The last run publishes the backlog at full speed.
        beforeFinal: () => proxy.clear(),
        target: () => ({
          store: "s3://tessera-test/crash/",
          env: {
            AWS_ACCESS_KEY_ID: server.accessKeyId,
            AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
            AWS_REGION: server.region,
            AWS_ENDPOINT_URL: proxy.endpoint,
          },
          // Checks read s3rver directly, past the proxy's delay.
          check: new S3Store({
            bucket: server.bucket,
            endpoint: server.endpoint,
            region: server.region,
            credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
          }, { prefix: "crash/" }),
        }),
      }, random);
    } finally {
      await proxy.clear();
    }
  });
});
