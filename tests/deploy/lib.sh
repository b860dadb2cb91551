# Sourced by tests/deploy/test_*.sh, which ctest runs as
#   bash test_X.sh SOURCE_DIR BUILD_DIR
# A tool that is missing is a failure, never a silent skip.
set -euo pipefail
SRC="$1"
BUILD="$2"
HERE="$SRC/tests/deploy"
fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 not found (Debian package $2; scripts/lib.sh installs it)"; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Installs tests/deploy/package-lock.json's packages into BUILD/deploy-node
# (npm ci, once per lock file; a lock serialises parallel tests) and points
# NODE_PATH at them. Nothing is installed in the source tree.
node_tools() {
  need node nodejs
  need npm npm
  local dir="$BUILD/deploy-node"
  mkdir -p "$dir"
  (
    flock 9
    if ! cmp -s "$HERE/package-lock.json" "$dir/installed-lock.json"; then
      rm -rf "$dir/node_modules"
      cp "$HERE/package.json" "$HERE/package-lock.json" "$dir/"
      (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in $dir"
      cp "$HERE/package-lock.json" "$dir/installed-lock.json"
    fi
  ) 9>"$dir/.lock"
  export NODE_PATH="$dir/node_modules"
}

# expect_fail WHAT PATTERN CMD...: CMD must fail and print PATTERN.
expect_fail() {
  local what="$1" pattern="$2"; shift 2
  local out
  if out="$("$@" 2>&1)"; then fail "$what: accepted"; fi
  grep -q -- "$pattern" <<<"$out" || { echo "$out" >&2; fail "$what: failed without '$pattern'"; }
  echo "ok   refused: $what"
}
