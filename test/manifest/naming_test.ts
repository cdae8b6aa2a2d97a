import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { checkChosenName, deriveName, isDerivedName, parseSource } from "../../src/manifest/naming.ts";

const hexHash = (text: string) => createHash("sha256").update(new TextEncoder().encode(text)).digest("hex");

/** The rule's enc(): every UTF-8 byte but A-Z a-z 0-9 - . _ as %XX, upper-case. */
function enc(text: string): string {
  return [...new TextEncoder().encode(text)]
    .map((b) =>
      /[A-Za-z0-9._-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`
    )
    .join("");
}

const host = fc.string({ unit: "binary", minLength: 1, maxLength: 40, size: "max" }).filter((h) =>
  !/[/\0]/.test(h)
);
const path = fc.string({ unit: "binary", maxLength: 150, size: "max" }).map((p) =>
  `/${p.replaceAll("\0", "")}`
);

describe("database names", () => {
  it("deriveName() gives the names the rule gives, on fixed vectors", async () => {
    // sha256("db1\0/srv/app.db") = 6c195ee9...
    assert.equal(await deriveName("db1", "/srv/app.db"), "6c19-db1%3A%2Fsrv%2Fapp.db");
    // sha256("hôte\0/données/é t~.db") = dc139644...
    assert.equal(
      await deriveName("hôte", "/données/é t~.db"),
      "dc13-h%C3%B4te%3A%2Fdonn%C3%A9es%2F%C3%A9%20t%7E.db",
    );
  });

  it("deriveName() shortens long names to 120 bytes, ~ and 32 hex digits, never inside a %XX escape", async () => {
    const cases: [string, string][] = [
      [`/${"a".repeat(300)}`, `h%3A%2F${"a".repeat(113)}`], // cut at 120
      [`/${"a".repeat(112)} ${"b".repeat(100)}`, `h%3A%2F${"a".repeat(112)}`], // 120 would end in "%"
      [`/${"a".repeat(111)} ${"b".repeat(100)}`, `h%3A%2F${"a".repeat(111)}`], // 120 would end in "%2"
      [`/${"a".repeat(110)} ${"b".repeat(100)}`, `h%3A%2F${"a".repeat(110)}%20`], // the escape ends at 120
    ];
    for (const [p, cut] of cases) {
      const h = hexHash(`h\0${p}`);
      assert.equal(await deriveName("h", p), `${h.slice(0, 4)}-${cut}~${h.slice(0, 32)}`);
    }
    const h = hexHash(`h\0/${"a".repeat(188)}`);
    assert.equal(
      await deriveName("h", `/${"a".repeat(188)}`),
      `${h.slice(0, 4)}-h%3A%2F${"a".repeat(188)}`,
      "200 bytes fit",
    );
    assert.match(await deriveName("h", `/${"a".repeat(189)}`), /~[0-9a-f]{32}$/, "201 bytes do not");
  });

  it("deriveName() follows the rule for any host and path", async () => {
    await fc.assert(
      fc.asyncProperty(host, path, async (h, p) => {
        const name = await deriveName(h, p);
        const hash = hexHash(`${h}\0${p}`);
        const full = `${enc(h)}%3A${enc(p)}`;
        assert.ok(name.length <= 200);
        assert.ok(isDerivedName(name), name);
        if (5 + full.length <= 200) {
          assert.equal(name, `${hash.slice(0, 4)}-${full}`);
          assert.deepEqual(await parseSource(name, { hostname: "x" }), { name, hostname: h, sourcePath: p });
        } else {
          const cut = name.slice(5, -33);
          assert.equal(name, `${hash.slice(0, 4)}-${cut}~${hash.slice(0, 32)}`);
          assert.ok(full.startsWith(cut) && cut.length <= 120 && cut.length >= 118);
          assert.doesNotMatch(cut, /%[0-9A-F]?$/, "the cut does not end inside an escape");
          assert.deepEqual(await parseSource(name, { hostname: "x" }), {
            name,
            hostname: "",
            sourcePath: "",
          });
        }
        if (p.endsWith("/")) return; // a directory, which parseSource() refuses
        assert.deepEqual(
          await parseSource(`tessera://${h}${encodeURI(p).replaceAll("#", "%23").replaceAll("?", "%3F")}`, {
            hostname: "x",
          }),
          {
            name,
            hostname: h,
            sourcePath: p,
          },
        );
      }),
      { numRuns: 500 },
    );
  });

  it("deriveName() rejects hosts and paths that cannot name a database", async () => {
    for (
      const [h, p, why] of [
        ["", "/a", /hostname is empty/],
        ["h", "a", /"a" is not absolute/],
        ["a/b", "/a", /holds '\/'/],
        ["h", "/a\0", /NUL/],
        ["h", "/\ud800", /well-formed/],
      ] as const
    ) {
      await assert.rejects(deriveName(h, p), { name: "RangeError", message: why });
    }
  });

  it("isDerivedName() tells derived names from chosen and malformed ones", () => {
    const h32 = "0123456789abcdef0123456789abcdef";
    const cut = `h%3A%2F${"a".repeat(113)}`;
    assert.ok(isDerivedName("6c19-db1%3A%2Fsrv%2Fapp.db"));
    assert.ok(isDerivedName(`0123-${cut}~${h32}`));
    for (
      const bad of [
        "app",
        "6c19-db1",
        "6c19-%3A%2Fsrv", // empty host
        "6c19-db1%3a%2Fsrv", // lower-case escape
        "6c19-db1%3A%2F%41", // "A" need not be escaped
        "6c19-db1%3A%2F%FF", // not UTF-8
        "6C19-db1%3A%2Fsrv",
        `0124-${cut}~${h32}`, // the two hashes disagree
        `0123-${cut.slice(0, 100)}~${h32}`, // too short a cut
        `0123-${"a".repeat(196)}`,
      ]
    ) {
      assert.equal(isDerivedName(bad), false, bad);
    }
  });

  it("checkChosenName() accepts the chosen-name pattern and names the rule a name breaks", () => {
    for (const ok of ["app", "a.b-c_d", "_x", "-x", "9", "x".repeat(200)]) checkChosenName(ok);
    const cases: [string, string][] = [
      ["", "a name cannot be empty"],
      [".app", "a chosen name cannot start with '.'"],
      ["x".repeat(201), "a chosen name is at most 200 characters"],
      ["a/b", "a chosen name holds only A-Z, a-z, 0-9, '.', '_' and '-'"],
      ["é", "a chosen name holds only A-Z, a-z, 0-9, '.', '_' and '-'"],
    ];
    for (const [name, rule] of cases) {
      assert.throws(() => checkChosenName(name), {
        code: "CONFIG_INVALID",
        message: `Invalid database name ${JSON.stringify(name)}: ${rule}`,
      });
    }
  });

  it("parseSource() reads tessera:// URLs, chosen names and derived names", async () => {
    const here = { hostname: "db1" };
    assert.deepEqual(await parseSource("tessera://db1/srv/app.db", here), {
      name: "6c19-db1%3A%2Fsrv%2Fapp.db",
      hostname: "db1",
      sourcePath: "/srv/app.db",
    });
    assert.deepEqual(
      await parseSource("tessera:///srv/app.db", here),
      await parseSource("tessera://db1/srv/app.db", here),
    );
    assert.deepEqual(await parseSource("tessera://hôte/donn%C3%A9es/%C3%A9%20t~.db", here), {
      name: "dc13-h%C3%B4te%3A%2Fdonn%C3%A9es%2F%C3%A9%20t%7E.db",
      hostname: "hôte",
      sourcePath: "/données/é t~.db",
    });
    assert.deepEqual(await parseSource("app", here), { name: "app", hostname: "", sourcePath: "" });
    assert.deepEqual(await parseSource("6c19-db1%3A%2Fsrv%2Fapp.db", here), {
      name: "6c19-db1%3A%2Fsrv%2Fapp.db",
      hostname: "db1",
      sourcePath: "/srv/app.db",
    });
  });

  it("parseSource() rejects what names no database, saying why", async () => {
    const cases: [string, RegExp][] = [
      ["tessera://db1", /expected tessera:\/\/host\/abs\/path or tessera:\/\/\/abs\/path/],
      ["tessera://db1/", /names a directory/],
      ["tessera:///srv/", /names a directory/],
      ["tessera:///a%ZZ", /invalid %XX escape/],
      ["tessera:///a%FF", /not UTF-8 once decoded/],
      ["tessera:///a%00", /NUL/],
      [
        "http://db1/srv/app.db",
        /expected tessera:\/\/host\/abs\/path, tessera:\/\/\/abs\/path, or a database name/,
      ],
      [".app", /or a database name/],
      ["", /or a database name/],
      ["0000-db1%3A%2Fsrv%2Fapp.db", /its leading hash does not match the host and path it names/],
      ["app\ud800", /not well-formed Unicode/],
    ];
    for (const [source, message] of cases) {
      await assert.rejects(parseSource(source, { hostname: "db1" }), {
        code: "CONFIG_INVALID",
        message: new RegExp(`^Cannot parse source ${escape(JSON.stringify(source))}: .*${message.source}`),
      }, source);
    }
    await assert.rejects(parseSource("tessera:///srv/app.db", { hostname: "" }), /the hostname is empty/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
