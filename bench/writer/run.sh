#!/usr/bin/env bash
# Writer benchmark: tagline's discovery and rewrite against git grep, rg, grep and sed -i, on
# generated trees, in one invocation. Prints hyperfine's tables, then the ratios.
#
# usage: bench/writer/run.sh [FILES:MARKED ...]      (default: 5000:500 50000:500)
# env:   BENCH_DIR (where trees go, kept; default a temp dir, removed), RUNS (default 10)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$bench_root"
bench_need cargo git python3 hyperfine rg grep sed
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
RUNS="${RUNS:-10}"
# The trees stay in BENCH_DIR when it is given (to be reused), else in a directory (on disk, not
# /dev/shm: the writes are what is measured) removed at the end.
if [ -n "${BENCH_DIR:-}" ]; then
    WORK=$BENCH_DIR
else
    bench_init writer "${TMPDIR:-/tmp}"
    WORK=$work
fi
SPECS=("$@")
[ ${#SPECS[@]} -gt 0 ] || SPECS=(5000:500 50000:500)

BIN=$(cargo bench --bench writer --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "writer":
        print(m["executable"])')
[ -x "$BIN" ] || { echo "could not build benches/writer.rs" >&2; exit 1; }

for spec in "${SPECS[@]}"; do
    files=${spec%%:*}
    marked=${spec##*:}
    T="$WORK/tree-$files"
    if [ ! -d "$T/.git" ]; then
        rm -rf "$T"
        python3 bench/writer/gen.py "$T" "$files" "$marked"
        git -C "$T" init -q
        git -C "$T" add -A
        git -C "$T" -c user.name=bench -c user.email=bench@localhost commit -qm tree
    fi
    git -C "$T" checkout -q -- .
    (cd "$T" && git grep -l '"$imagepolicy"') | sed "s|^|$T/|" > "$WORK/marked-$files"
    echo "== tree: $files files, $(wc -l < "$WORK/marked-$files") marked, $(du -sh "$T" --exclude=.git | cut -f1)"

    hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$WORK/discover-$files.json" \
        -n git-grep "git -C $T grep -lF \$imagepolicy" \
        -n rg "rg -lF \$imagepolicy $T" \
        -n grep "grep -rlF --exclude-dir=.git \$imagepolicy $T" \
        -n tagline-discover "$BIN discover $T"

    hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/rewrite-$files.json" \
        --prepare "git -C $T checkout -q -- . && sync" \
        -n sed-i "xargs sed -i 's|reg/team/app:1.0.0 #|reg/team/app:1.1.0 #|' < $WORK/marked-$files" \
        -n tagline-write "$BIN write $T"

    # The rewrite is the same, and untouched files were not written.
    git -C "$T" checkout -q -- .
    xargs sed -i 's|reg/team/app:1.0.0 #|reg/team/app:1.1.0 #|' < "$WORK/marked-$files"
    git -C "$T" diff > "$WORK/sed.diff"
    git -C "$T" checkout -q -- .
    touch "$WORK/stamp"
    sleep 0.01
    "$BIN" write "$T"
    git -C "$T" diff > "$WORK/tagline.diff"
    written=$(find "$T" -path "$T/.git" -prune -o -type f -newer "$WORK/stamp" -print | wc -l)
    if cmp -s "$WORK/sed.diff" "$WORK/tagline.diff"; then same=yes; else same=NO; fi
    echo "same result as sed -i: $same; files written by tagline: $written"
    git -C "$T" checkout -q -- .

    python3 - "$WORK/discover-$files.json" "$WORK/rewrite-$files.json" <<'PY'
import json, sys
d = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
w = {r["command"]: r["mean"] for r in json.load(open(sys.argv[2]))["results"]}
ms = lambda s: f"{s * 1000:.1f} ms"
print(f"discovery: tagline {ms(d['tagline-discover'])}, rg {ms(d['rg'])}, git grep {ms(d['git-grep'])}, grep -r {ms(d['grep'])}")
for k in ("rg", "git-grep", "grep"):
    print(f"  tagline-discover / {k}: {d['tagline-discover'] / d[k]:.2f}x")
print(f"rewrite: tagline discovery+rewrite {ms(w['tagline-write'])}, sed -i alone {ms(w['sed-i'])}")
print(f"  tagline-write / sed-i: {w['tagline-write'] / w['sed-i']:.2f}x")
PY
done
