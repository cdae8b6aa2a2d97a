import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { join } from "node:path";
import { chooseRetained, pruneDatabase, type RetentionPolicy } from "../../src/history/prune.ts";
import { listDatabases } from "../../src/manifest/catalog.ts";
import { manifestKey, manifestsPrefix } from "../../src/manifest/keys.ts";
import { LocalStore } from "../../src/store/local.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { keysUnder, objectKeys, publishAt } from "./_fixtures.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2025, 5, 15, 12, 30);

interface Entry {
  sequence: number;
  createdMs: number;
}

const entriesArb = fc.uniqueArray(
  fc.record({
    sequence: fc.integer({ min: 1, max: 400 }),
    createdMs: fc.integer({ min: NOW - 40 * DAY, max: NOW }),
  }),
  { selector: (e) => e.sequence, minLength: 0, maxLength: 60 },
);

const rulesArb = fc.record({
  keepLast: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
  keepWithinMs: fc.option(fc.integer({ min: 0, max: 10 * DAY }), { nil: undefined }),
  keepHourly: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
  keepDaily: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
}).filter((r) => Object.values(r).some((v) => v !== undefined));

/** Entries with a pointer naming one of them (or, sometimes, none). */
const caseArb = entriesArb.chain((entries) =>
  fc.tuple(
    fc.constant(entries),
    rulesArb,
    entries.length === 0
      ? fc.constant(undefined)
      : fc.option(fc.constantFrom(...entries.map((e) => e.sequence)), { nil: undefined, freq: 8 }),
  )
);

function kept(entries: readonly Entry[], policy: RetentionPolicy, now = NOW): Set<number> {
  return new Set(
    chooseRetained(entries, policy, now).filter((d) => d.reasons.length > 0).map((d) => d.entry.sequence),
  );
}

function byReason(entries: readonly Entry[], policy: RetentionPolicy, reason: string): Entry[] {
  return chooseRetained(entries, policy, NOW).filter((d) => d.reasons.includes(reason as never)).map((d) =>
    d.entry
  );
}

describe("chooseRetained()", () => {
  it("returns one decision per entry, in sequence order", () => {
    fc.assert(fc.property(caseArb, ([entries, rules, pointerSequence]) => {
      const decisions = chooseRetained(entries, { ...rules, pointerSequence }, NOW);
      assert.deepEqual(
        decisions.map((d) => d.entry.sequence),
        entries.map((e) => e.sequence).sort((a, b) => a - b),
      );
    }));
  });

  it("always keeps the pointer's snapshot and every newer one, and everything when there is no pointer", () => {
    fc.assert(fc.property(caseArb, ([entries, rules, pointerSequence]) => {
      const keep = kept(entries, { ...rules, pointerSequence });
      for (const e of entries) {
        if (pointerSequence === undefined || e.sequence >= pointerSequence) assert.ok(keep.has(e.sequence));
      }
    }));
  });

  it("keeps the newest N by sequence under keepLast, and every snapshot within the window under keepWithinMs", () => {
    fc.assert(fc.property(caseArb, ([entries, rules, pointerSequence]) => {
      const policy = { ...rules, pointerSequence };
      const keep = kept(entries, policy);
      const newest = entries.map((e) => e.sequence).sort((a, b) => b - a);
      if (rules.keepLast !== undefined) {
        for (const s of newest.slice(0, rules.keepLast)) assert.ok(keep.has(s), `keepLast keeps ${s}`);
        assert.deepEqual(
          byReason(entries, policy, "last").map((e) => e.sequence).sort((a, b) => b - a),
          newest.slice(0, rules.keepLast),
        );
      }
      if (rules.keepWithinMs !== undefined) {
        for (const e of entries) {
          assert.equal(
            byReason(entries, policy, "within").includes(e),
            e.createdMs >= NOW - rules.keepWithinMs,
          );
        }
      }
    }));
  });

  it("keeps, per hour and per day, the newest snapshot of each of the N newest periods that have any", () => {
    fc.assert(fc.property(caseArb, ([entries, rules, pointerSequence]) => {
      const policy = { ...rules, pointerSequence };
      for (
        const [count, period, reason] of [[rules.keepHourly, HOUR, "hourly"], [
          rules.keepDaily,
          DAY,
          "daily",
        ]] as const
      ) {
        if (count === undefined) continue;
        const chosen = byReason(entries, policy, reason);
        const periodOf = (e: Entry) => Math.floor(e.createdMs / period);
        const periods = new Set(entries.map(periodOf));
        assert.equal(chosen.length, Math.min(count, periods.size));
        assert.equal(new Set(chosen.map(periodOf)).size, chosen.length, "one per period");
        const covered = new Set(chosen.map(periodOf));
        for (const c of chosen) {
          for (const e of entries) {
            // Nothing newer is left out of the chosen periods, and each is its period's newest.
            if (e.sequence > c.sequence) {
              assert.ok(covered.has(periodOf(e)), `${reason}: skipped a newer period`);
            }
            if (periodOf(e) === periodOf(c)) assert.ok(e.sequence <= c.sequence, `${reason}: not the newest`);
          }
        }
      }
    }));
  });

  it("keeps what any rule keeps: two rules together keep the union of what each keeps alone", () => {
    fc.assert(fc.property(caseArb, rulesArb, ([entries, a, pointerSequence], b) => {
      const merged: RetentionPolicy = { pointerSequence };
      for (const key of ["keepLast", "keepWithinMs", "keepHourly", "keepDaily"] as const) {
        if (a[key] !== undefined) merged[key] = a[key];
        else if (b[key] !== undefined) merged[key] = b[key];
      }
      const onlyA = { ...a, pointerSequence };
      const onlyB = Object.fromEntries(
        Object.entries(b).filter(([key, v]) => v !== undefined && a[key as keyof typeof a] === undefined),
      );
      const union = new Set([...kept(entries, onlyA)]);
      if (Object.keys(onlyB).length > 0) {
        for (const s of kept(entries, { ...onlyB, pointerSequence })) union.add(s);
      }
      assert.deepEqual([...kept(entries, merged)].sort(), [...union].sort());
    }));
  });

  it("is idempotent: pruning what a policy kept keeps all of it", () => {
    fc.assert(fc.property(caseArb, ([entries, rules, pointerSequence]) => {
      const policy = { ...rules, pointerSequence };
      const keep = kept(entries, policy);
      const survivors = entries.filter((e) => keep.has(e.sequence));
      assert.equal(kept(survivors, policy).size, survivors.length);
    }));
  });

  it("counts UTC hours and days, newest snapshot first", () => {
    const at = (iso: string) => Date.parse(iso);
    const entries = [
      { sequence: 1, createdMs: at("2025-06-13T23:59:00Z") },
      { sequence: 2, createdMs: at("2025-06-14T00:01:00Z") },
      { sequence: 3, createdMs: at("2025-06-14T10:00:00Z") },
      { sequence: 4, createdMs: at("2025-06-15T09:10:00Z") },
      { sequence: 5, createdMs: at("2025-06-15T09:50:00Z") },
      { sequence: 6, createdMs: at("2025-06-15T11:00:00Z") },
    ];
    assert.deepEqual([...kept(entries, { keepDaily: 2, pointerSequence: 6 })].sort(), [3, 6]);
    assert.deepEqual([...kept(entries, { keepDaily: 9, pointerSequence: 6 })].sort(), [1, 3, 6]);
    assert.deepEqual([...kept(entries, { keepHourly: 2, pointerSequence: 6 })].sort(), [5, 6]);
    assert.deepEqual(
      [...kept(entries, { keepWithinMs: 3 * HOUR + 21 * 60_000, pointerSequence: 6 })].sort(),
      [
        4,
        5,
        6,
      ],
    );
    // Everything newer than the pointer is a publish in progress.
    assert.deepEqual([...kept(entries, { keepLast: 1, pointerSequence: 3 })].sort(), [3, 4, 5, 6]);
  });

  it("rejects a policy without rules, and counts that are not whole numbers ≥ 1", () => {
    assert.throws(() => chooseRetained([], { pointerSequence: 1 }, NOW), /give at least one rule/);
    assert.throws(() => chooseRetained([], { keepLast: 0, pointerSequence: 1 }, NOW), /keepLast is 0/);
    assert.throws(() => chooseRetained([], { keepDaily: 1.5, pointerSequence: 1 }, NOW), RangeError);
    assert.throws(() => chooseRetained([], { keepWithinMs: -1, pointerSequence: 1 }, NOW), /keepWithinMs/);
  });
});

describe("pruneDatabase()", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("prune");
  });
  after(() => removeDir(dir));

  it("deletes the manifests no rule keeps, never the pointer's or a newer one, and no chunk", async () => {
    const store = new LocalStore(join(dir, "store"));
    const now = Date.now();
    for (let s = 1; s <= 5; s++) await publishAt(store, "app", s, now - (10 - s) * DAY);
    // Sequence 6 is a publish in progress: its manifest is written, the pointer not yet moved.
    await publishAt(store, "app", 6, now - 2 * DAY, { pointer: false });
    await publishAt(store, "other", 1, now - 30 * DAY);
    const chunksBefore = await objectKeys(store);

    const dry = await pruneDatabase(store, "app", { keepWithinMs: 6 * DAY }, { dryRun: true, nowMs: now });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.pointerSequence, 5);
    assert.deepEqual(dry.deleted.map((e) => e.sequence), [1, 2, 3]);
    assert.deepEqual(dry.kept.map((e) => [e.sequence, e.reasons]), [
      [4, ["within"]],
      [5, ["pointer", "within"]],
      [6, ["pending", "within"]],
    ]);
    assert.equal((await keysUnder(store, manifestsPrefix("app"))).length, 6, "a dry run deletes nothing");

    const real = await pruneDatabase(store, "app", { keepLast: 1 });
    assert.deepEqual(real.deleted.map((e) => e.key), [1, 2, 3, 4].map((s) => manifestKey("app", s)));
    assert.deepEqual(
      await keysUnder(store, manifestsPrefix("app")),
      [5, 6].map((s) => manifestKey("app", s)),
    );
    assert.deepEqual(await keysUnder(store, manifestsPrefix("other")), [manifestKey("other", 1)]);
    assert.deepEqual(await objectKeys(store), chunksBefore, "prune deletes no chunk");
    assert.deepEqual(await listDatabases(store), ["app", "other"]);
  });

  it("keeps every snapshot of a database without a pointer", async () => {
    const store = new LocalStore(join(dir, "no-pointer"));
    for (let s = 1; s <= 3; s++) await publishAt(store, "app", s, Date.now() - s * DAY, { pointer: false });
    const report = await pruneDatabase(store, "app", { keepLast: 1 });
    assert.equal(report.pointerSequence, null);
    assert.deepEqual(report.deleted, []);
    assert.equal((await keysUnder(store, manifestsPrefix("app"))).length, 3);
  });
});
