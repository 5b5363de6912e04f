#!/usr/bin/env bash
# Policy benchmark in one invocation: installs node's semver here (once), builds tagline in
# release, and runs benches/policy.rs, which times tagline and node on the same tags.
# Usage: bench/policy/run.sh [sizes...]   (default: 10000 100000 1000000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
bench_need cargo node npm
if [ ! -f "$here/node_modules/semver/package.json" ]; then
    (cd "$here" && npm install --no-audit --no-fund --silent)
fi
cd "$bench_root"
exec cargo bench --bench policy -- "$@"
