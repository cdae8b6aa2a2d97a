#!/usr/bin/env bash
# The whole test suite: static checks, then every test under Deno and under Bun, then one summary line.
# Usage: npm test   (after npm install)
set -uo pipefail
cd "$(dirname "$0")/.."

deno=./node_modules/deno/deno
bun=./node_modules/.bin/bun
if [ ! -x "$deno" ] || [ ! -x "$bun" ]; then
  echo "test.sh: Deno and Bun come from npm: run 'npm install' first" >&2
  exit 2
fi
if [ ! -x /usr/bin/aws ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing Debian's awscli (the S3 interop tests need it)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli >/dev/null || exit 2
  else
    echo "test.sh: the S3 interop tests need Debian's awscli at /usr/bin/aws: sudo apt-get install awscli" >&2
    exit 2
  fi
fi

# The writer matrix writes databases the way users' programs do: Python's sqlite3 and the sqlite3 CLI.
if ! command -v sqlite3 >/dev/null || ! command -v python3 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing Debian's sqlite3 and python3 (the writer matrix needs them)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 python3 >/dev/null || exit 2
  else
    echo "test.sh: the writer matrix needs python3 and the sqlite3 CLI: sudo apt-get install sqlite3 python3" >&2
    exit 2
  fi
fi

# The browser tests drive Debian's chromium with playwright-core (from npm); nothing downloads a browser.
if [ ! -x /usr/bin/chromium ] && [ -z "${TESSERA_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing Debian's chromium (the browser tests need it)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || exit 2
  else
    echo "test.sh: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    exit 2
  fi
fi

mkdir -p .tmp
status=0
failed_steps=()
step() {
  echo "== $*"
  if ! "$@"; then
    status=1
    failed_steps+=("$*")
  fi
}
step "$deno" fmt --check
step "$deno" lint
step "$deno" check src/ test/ bench/ scripts/ examples/
deno_tests=("$deno" test -A --no-check --junit-path=.tmp/junit-deno.xml test/)
bun_tests=("$bun" test --timeout 120000 --reporter=junit --reporter-outfile=.tmp/junit-bun.xml test/)
if [ "${TESSERA_TEST_SERIAL:-}" = 1 ]; then
  step "${deno_tests[@]}"
  step "${bun_tests[@]}"
else
  # The two runtimes' runs side by side: most tests wait on processes, servers and a browser, so this takes
  # little more than the longer of the two on 2 cores. Each line says which run wrote it; TESSERA_TEST_SERIAL=1
  # runs one after the other instead.
  echo "== ${deno_tests[*]} & ${bun_tests[*]} (side by side: lines start [deno] or [bun])"
  rm -f .tmp/deno-tests.rc .tmp/bun-tests.rc
  { "${deno_tests[@]}" 2>&1; echo $? > .tmp/deno-tests.rc; } | sed -u 's/^/[deno] /' &
  { "${bun_tests[@]}" 2>&1; echo $? > .tmp/bun-tests.rc; } | sed -u 's/^/[bun] /' &
  wait
  for runtime in deno bun; do
    if [ "$(cat ".tmp/$runtime-tests.rc" 2>/dev/null)" != 0 ]; then
      status=1
      failed_steps+=("$runtime tests (exit $(cat ".tmp/$runtime-tests.rc" 2>/dev/null || echo unknown))")
    fi
  done
fi
echo "== summary"
"$deno" run -A scripts/test_summary.ts deno=.tmp/junit-deno.xml bun=.tmp/junit-bun.xml || status=1
# A step can fail with every test passing (a lint or type error, a crash outside any test): name it last,
# where a reader of the log's tail sees it.
for failed in "${failed_steps[@]}"; do echo "FAILED step: $failed"; done
exit $status
