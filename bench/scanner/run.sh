#!/usr/bin/env bash
# Scanner benchmark: one repository with 10,000 tags on a local docker-registry; tagline's scan
# against `skopeo list-tags` and `curl` of the same URL, each a fresh process per run (hyperfine),
# then the times, the ratios to tagline, and the peak RSS of one run of each.
#
#   bench/scanner/run.sh            # TAGS=10000 RUNS=20 by default
#   TAGS=50000 RUNS=10 bench/scanner/run.sh
#
# Needs docker-registry, skopeo, curl, hyperfine, python3 (Debian packages). The registry runs on
# 127.0.0.1 with a free port and its storage in /dev/shm; both go away when the script ends.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
TAGS=${TAGS:-10000}
RUNS=${RUNS:-20}
source "$here/../lib.sh"
bench_need docker-registry skopeo curl hyperfine python3 sha256sum

# The driver binary, built against the same dependency versions as the crate.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
cp "$repo/Cargo.lock" "$here/Cargo.lock"
cargo build --quiet --release --manifest-path "$here/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/scan-tags

bench_init scanner
start_registry "$work"
cd "$work"
# One real image pushed over the API...
push_image bench/app v0.0.0

# ...then tagged TAGS times. Tag PUTs run at ~115/s, so the other tags are written the way the
# registry stores them (a directory per tag holding the manifest link), which it then lists.
python3 - "$work/data/docker/registry/v2/repositories/bench/app/_manifests/tags" "$TAGS" <<'PY'
import os, shutil, sys
root, n = sys.argv[1], int(sys.argv[2])
src = os.path.join(root, "v0.0.0")
for i in range(1, n):
    tag = f"v{i // 1000}.{(i // 10) % 100}.{i % 10}-build.{i}"
    shutil.copytree(src, os.path.join(root, tag))
PY
count=$(curl -sf "$base/v2/bench/app/tags/list" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tags"]))')
[ "$count" = "$TAGS" ] || { echo "registry lists $count tags, expected $TAGS" >&2; exit 1; }
got=$("$bin" --insecure "127.0.0.1:$port/bench/app")
[ "$got" = "$TAGS" ] || { echo "tagline listed $got tags, expected $TAGS" >&2; exit 1; }

echo "== $TAGS tags, docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}'), $RUNS runs each, one process per run"
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$work/times.json" \
  -n tagline "$bin --insecure 127.0.0.1:$port/bench/app" \
  -n "skopeo list-tags" "skopeo list-tags --tls-verify=false docker://127.0.0.1:$port/bench/app" \
  -n curl "curl -sf -o /dev/null $base/v2/bench/app/tags/list?n=1000" >"$work/hyperfine.txt"

rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
rss_tagline=$(rss "$bin" --insecure "127.0.0.1:$port/bench/app")
rss_skopeo=$(rss skopeo list-tags --tls-verify=false "docker://127.0.0.1:$port/bench/app")
rss_curl=$(rss curl -sf -o /dev/null "$base/v2/bench/app/tags/list?n=1000")

python3 - "$work/times.json" "$rss_tagline" "$rss_skopeo" "$rss_curl" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
rss = dict(zip(["tagline", "skopeo list-tags", "curl"], sys.argv[2:5]))
ref = next(r for r in results if r["command"] == "tagline")
print(f"{'command':<18}{'mean ms':>10}{'± ms':>8}{'min ms':>9}{'max ms':>9}{'vs tagline':>12}{'peak RSS':>11}")
for r in results:
    name = r["command"]
    print(f"{name:<18}{r['mean']*1e3:>10.1f}{r['stddev']*1e3:>8.1f}{r['min']*1e3:>9.1f}{r['max']*1e3:>9.1f}"
          f"{r['mean']/ref['mean']:>11.2f}x{int(rss[name])/1024:>8.1f} MB")
PY
# In one process, a warm client (connection kept alive, token cache): what the daemon sees.
"$bin" --insecure --repeat 20 "127.0.0.1:$port/bench/app" >/dev/null
