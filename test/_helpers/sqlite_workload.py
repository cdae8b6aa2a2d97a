"""Writes a SQLite database the way users' programs do, for the writer matrix (test/replicate/writer_matrix_test.ts).

Usage: python3 sqlite_workload.py CASE DB [COMMITS]

Every commit keeps one invariant, so any committed state can be recognised in a snapshot: table items holds
keys 1..k and meta.last = k (the schema of test/_helpers/writer_main.ts). Each case prints "done K" with the
last committed k when it has finished and closed every connection it opened.
"""

import os
import sqlite3
import subprocess
import sys
import threading
import time

CASE, DB = sys.argv[1], sys.argv[2]
COMMITS = int(sys.argv[3]) if len(sys.argv) > 3 else 24
PAUSE = 0.03
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items (k INTEGER PRIMARY KEY, payload BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta (id, last) VALUES (1, 0);"
)
HERE = os.path.abspath(__file__)


def connect(path=DB):
    db = sqlite3.connect(path, timeout=20, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 20000")
    return db


def commit_on(db, size=1500):
    db.execute("BEGIN IMMEDIATE")
    k = db.execute("SELECT last FROM meta").fetchone()[0] + 1
    db.execute("INSERT INTO items (k, payload) VALUES (?, randomblob(?))", (k, size))
    db.execute("UPDATE meta SET last = ? WHERE id = 1", (k,))
    db.execute("COMMIT")
    return k


def last(path=DB):
    db = connect(path)
    try:
        return db.execute("SELECT last FROM meta").fetchone()[0]
    finally:
        db.close()


def switch_journal(db, mode):
    """Leaving WAL needs the only connection: SQLite answers "database is locked" at once, without a busy
    wait, while any other connection is open (here, a capture's reader for a few milliseconds), and programs
    retry. The attempts are reported on stderr."""
    for attempt in range(200):
        try:
            got = db.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.01)
            continue
        if got != mode:
            raise SystemExit(f"journal_mode = {mode} answered {got}")
        if attempt:
            print(f"journal_mode = {mode} after {attempt + 1} attempts", file=sys.stderr)
        return
    raise SystemExit(f"journal_mode = {mode}: still locked after 200 attempts")


def short_lived(n, size=1500):
    """n commits, each by a new process that opens, commits and closes."""
    for _ in range(n):
        subprocess.run([sys.executable, HERE, "one", DB], check=True)
        time.sleep(PAUSE)


def long_lived(n, mode):
    db = connect()
    db.execute(f"PRAGMA journal_mode = {mode}")
    for _ in range(n):
        commit_on(db)
        time.sleep(PAUSE)
    db.close()


def main():
    if CASE == "one":
        db = connect()
        commit_on(db)
        db.close()
        return
    if CASE == "init-wal" or CASE == "init-delete":
        db = connect()
        db.execute(f"PRAGMA journal_mode = {CASE[5:]}")
        db.executescript(SCHEMA)
        for _ in range(20):
            commit_on(db, 3000)
        db.close()
        return
    if CASE == "long-lived-wal":
        long_lived(COMMITS, "wal")
    elif CASE == "long-lived-delete":
        long_lived(COMMITS, "delete")
    elif CASE == "short-lived":
        short_lived(COMMITS)
    elif CASE == "concurrent-short":
        threads = [threading.Thread(target=short_lived, args=(COMMITS // 3,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif CASE == "sqlite3-cli":
        for _ in range(COMMITS):
            subprocess.run(
                [
                    "sqlite3",
                    "-cmd",
                    ".timeout 20000",
                    DB,
                    "BEGIN IMMEDIATE; INSERT INTO items (k, payload) SELECT last + 1, randomblob(1500) FROM meta;"
                    " UPDATE meta SET last = last + 1; COMMIT;",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            time.sleep(PAUSE)
    elif CASE == "checkpoints":
        db = connect()
        for i in range(COMMITS):
            commit_on(db)
            if i % 3 == 2:
                kind = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"][(i // 3) % 4]
                other = connect()
                other.execute(f"PRAGMA wal_checkpoint({kind})").fetchall()
                other.close()
            time.sleep(PAUSE)
        db.close()
    elif CASE == "vacuum":
        db = connect()
        for i in range(COMMITS):
            commit_on(db, 4000)
            if i % 8 == 7:
                # Shrink every payload (free pages appear), then VACUUM rewrites the file smaller.
                db.execute("UPDATE items SET payload = zeroblob(10)")
                db.execute("VACUUM")
            time.sleep(PAUSE)
        db.close()
    elif CASE == "journal-switch":
        db = connect()
        for i in range(COMMITS):
            commit_on(db)
            if i % 6 == 5:
                mode = "delete" if (i // 6) % 2 == 0 else "wal"
                switch_journal(db, mode)
            time.sleep(PAUSE)
        db.close()
    elif CASE == "replace-rename":
        for _ in range(COMMITS // 6):
            short_lived(2)
            # Build the next version of the database beside it, then rename it into place.
            tmp = DB + ".next"
            src = connect()
            src.execute(f"VACUUM INTO '{tmp}'")
            src.close()
            nxt = connect(tmp)
            nxt.execute("PRAGMA journal_mode = delete")
            for _ in range(3):
                commit_on(nxt)
            nxt.close()
            os.rename(tmp, DB)
            time.sleep(0.1)
    elif CASE == "delete-recreate":
        for _ in range(COMMITS // 6):
            short_lived(2)
            k = last()
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(DB + suffix)
                except FileNotFoundError:
                    pass
            time.sleep(0.2)
            db = connect()
            db.execute("BEGIN EXCLUSIVE")
            db.execute("CREATE TABLE items (k INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
            db.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)")
            db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                       "INSERT INTO items SELECT i, randomblob(800) FROM n", (k + 2,))
            db.execute("INSERT INTO meta (id, last) VALUES (1, ?)", (k + 2,))
            db.execute("COMMIT")
            db.close()
            time.sleep(0.1)
    elif CASE == "page-size":
        db = connect()
        db.execute("PRAGMA journal_mode = delete")
        for i in range(COMMITS):
            commit_on(db)
            if i % 8 == 7:
                size = 8192 if (i // 8) % 2 == 0 else 4096
                db.execute(f"PRAGMA page_size = {size}")
                db.execute("VACUUM")
                got = db.execute("PRAGMA page_size").fetchone()[0]
                if got != size:
                    raise SystemExit(f"page_size = {size} gave {got}")
            time.sleep(PAUSE)
        db.close()
    else:
        raise SystemExit(f"unknown case {CASE}")
    print(f"done {last()}", flush=True)


main()
