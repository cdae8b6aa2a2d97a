import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Client } from "@libsql/client";
import type { IntMode } from "@libsql/core/api";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { assertSameResult, INT_MODES, makeParityDatabase, PARITY_CASES } from "./_parity.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

// The same statements through a replica (both engines, every intMode) and through @libsql/client on the
// original file: results and errors must be identical, batches and transactions included. Lazy wasm replicas
// run each statement again after fetching the 4 KiB chunks it missed; with no memory to hold them, in the
// offload worker.
const CONFIGS = [
  { label: "wasm", engine: "wasm" },
  { label: "native", engine: "native" },
  { label: "lazy wasm", engine: "wasm", load: "lazy", chunkSize: 4096 },
  {
    label: "lazy wasm (no memory: the worker)",
    engine: "wasm",
    load: "lazy",
    memoryCacheBytes: 0,
    chunkSize: 4096,
  },
] as const;
for (const config of CONFIGS) {
  const { engine } = config;
  describe(`a ${config.label} replica returns exactly what @libsql/client returns on the original file`, () => {
    let dir: string;
    const clients = new Map<IntMode, Client>();
    const replicas = new Map<IntMode, Replica>();

    before(async () => {
      dir = await makeTempDir(`replica-parity-${engine}`);
      const path = join(dir, "parity.db");
      for (const [intMode, client] of await makeParityDatabase(path)) clients.set(intMode, client);
      const store = new LocalStore(join(dir, "store"));
      await syncDatabase(path, {
        stores: [store],
        hostname: "h",
        name: "parity",
        spoolDir: join(dir, "spool"),
        chunkSize: "chunkSize" in config ? config.chunkSize : undefined,
      });
      for (const intMode of INT_MODES) {
        replicas.set(
          intMode,
          await openReplica("parity", {
            store,
            engine,
            intMode,
            pollIntervalMs: 0,
            load: "load" in config ? config.load : undefined,
            memoryCacheBytes: "memoryCacheBytes" in config ? config.memoryCacheBytes : undefined,
          }),
        );
      }
    });

    after(async () => {
      for (const client of clients.values()) client.close();
      for (const replica of replicas.values()) replica.close();
      await removeDir(dir);
    });

    for (const { name, stmt, intModes } of PARITY_CASES) {
      for (const intMode of intModes ?? INT_MODES) {
        it(`${name} (intMode "${intMode}")`, async () => {
          await assertSameResult(
            () => replicas.get(intMode)!.execute(stmt),
            () => clients.get(intMode)!.execute(stmt),
            name,
          );
        });
      }
    }

    if ("load" in config) {
      it("fetched its chunks as statements needed them (the worker's run every one that missed)", () => {
        for (const replica of replicas.values()) {
          const memory = replica.status().memory;
          assert.equal(memory.lazy, true);
          assert.ok(memory.chunksLoaded! > 0, `${memory.chunksLoaded} chunks fetched`);
          if ("memoryCacheBytes" in config) {
            assert.ok(memory.offloaded! > 10, `${memory.offloaded} statements ran in the worker`);
            assert.equal(memory.chunkBytes, 0, "nothing stays held");
          } else {
            // Only a statement that keeps missing (more than 8 runs) moves to the worker.
            assert.ok(memory.offloaded! <= 3, `${memory.offloaded} statements ran in the worker`);
          }
        }
      });
    }

    it("a batch and a read transaction return what @libsql/client's do", async () => {
      const stmts = PARITY_CASES.filter((c) =>
        c.throws === undefined && !(c.intModes && !c.intModes.includes("bigint"))
      )
        .map((c) => c.stmt);
      assert.ok(stmts.length > 20);
      const replica = replicas.get("bigint")!;
      const client = clients.get("bigint")!;
      const [mine, theirs] = [await replica.batch(stmts, "read"), await client.batch(stmts, "read")];
      assert.equal(mine.length, theirs.length);
      for (let i = 0; i < mine.length; i++) {
        await assertSameResult(() => mine[i]!, () => theirs[i]!, `batch statement ${i}`);
      }
      const tx = await replica.transaction("read");
      const theirTx = await client.transaction("read");
      try {
        for (const [i, stmt] of stmts.entries()) {
          await assertSameResult(
            () => tx.execute(stmt),
            () => theirTx.execute(stmt),
            `transaction statement ${i}`,
          );
        }
      } finally {
        tx.close();
        theirTx.close();
      }
    });
  });
}
