#!/usr/bin/env bash
# Node addon tests, run the way a user gets the package:
#   scripts/test-node.sh
# 1. packs the two npm packages (bindings/node/pack.mjs: release build,
#    stripped addon in memshelf-linux-x64-gnu, memshelf itself; checks the
#    committed loader and native typings are current);
# 2. installs both tarballs into a fresh temporary project with no cargo on
#    PATH (npm --offline: nothing comes from the network);
# 3. runs the Node test suite (node --test) against that install, including
#    the fs.readFile-latency test with 8 pending getOrSet waiters and the
#    near-cache stale-read audit against the real memshelf-agent;
# 4. tsc --strict on a user .ts file using every feature (with
#    @types/node, then the declarations alone without it), and runs it;
# 5. @keyv/test-suite (vitest) against memshelf/keyv (ioredis, for the
#    memshelf/redis tests, comes from bindings/node like the test tools);
# 6. `npm install <checkout>/bindings/node` creates no file in the checkout.
# Needs: cargo, Node.js >= 20, bindings/node/node_modules (scripts/setup.sh).
# Respects CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=never
node_dir=$root/bindings/node
[[ -d $node_dir/node_modules/@napi-rs/cli ]] || { echo "run scripts/setup.sh first (bindings/node/node_modules)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/memshelf-node-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "[node] packing"
node "$node_dir/pack.mjs" "$work/pkgs"
# The Rust side of the interop test, built now (the install has no cargo).
cargo build --quiet -p memshelf-node --example interop
target_dir=${CARGO_TARGET_DIR:-$root/target}
export MEMSHELF_INTEROP_BIN=$target_dir/debug/examples/interop
# The real agent, for the near-cache stale-read audit (test/nearcache-agent.test.js).
cargo build --quiet -p memshelf-agent
export MEMSHELF_AGENT_BIN=$target_dir/debug/memshelf-agent

# PATH without cargo or rustc.
clean_path=
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [[ -x $d/cargo || -x $d/rustc ]] && continue
  clean_path+=${clean_path:+:}$d
done

app=$work/app
mkdir -p "$app"
cp -r "$node_dir/test" "$node_dir/testlib" "$node_dir/test-keyv" "$node_dir/test-types" "$app/"
rm -rf "$app/test-types/out"
(
  cd "$app"
  export PATH=$clean_path
  if command -v cargo >/dev/null; then echo "cargo still on PATH" >&2; exit 1; fi
  echo '{"name":"memshelf-node-test-app","version":"1.0.0","private":true}' > package.json
  echo "[node] npm install of the packed tarballs (offline, no cargo on PATH)"
  npm install --offline --no-audit --no-fund --loglevel=error "$work"/pkgs/memshelf-linux-x64-gnu-*.tgz "$work"/pkgs/memshelf-[0-9]*.tgz
  test -f node_modules/memshelf-linux-x64-gnu/memshelf.linux-x64-gnu.node
  # The test tools come from bindings/node (pinned there); memshelf itself
  # resolves to this install.
  for p in keyv @keyv vitest typescript @types ioredis; do ln -s "$node_dir/node_modules/$p" "node_modules/$p"; done

  echo "[node] node --test against the installed package"
  MEMSHELF_EXPECT_INSTALLED=1 node --test test/

  echo "[node] tsc --strict (user.ts with @types/node; no-node.ts without)"
  node node_modules/typescript/bin/tsc -p test-types/tsconfig.json
  node node_modules/typescript/bin/tsc -p test-types/tsconfig.no-node.json
  node test-types/out/user.js > "$work/user.out"

  echo "[node] @keyv/test-suite against memshelf/keyv"
  node node_modules/vitest/vitest.mjs run --root test-keyv --reporter=dot
)

echo "[node] npm install <checkout>/bindings/node writes nothing into the checkout"
before=$(cd "$node_dir" && find . -path ./node_modules -prune -o -print | sort | sha256sum)
mkdir -p "$work/link-app"
(cd "$work/link-app" && echo '{"name":"link-app","version":"1.0.0","private":true}' > package.json &&
  PATH=$clean_path npm install --offline --no-audit --no-fund --loglevel=error "$node_dir")
after=$(cd "$node_dir" && find . -path ./node_modules -prune -o -print | sort | sha256sum)
[[ $before == "$after" ]] || { echo "npm install of the folder changed bindings/node" >&2; exit 1; }
echo "[node] all passed"
