#!/usr/bin/env bash
# Git write-back benchmark: one `tagline run --once` (clone, change one marked value, commit,
# push) against a git CLI script doing the same (`clone --depth 1`, sed, commit, push), on a
# generated repository (default 20,000 commits, 5,000 files) served by `git daemon`; and a
# run with nothing to do against `git ls-remote` of the same remote. Both sides run in the
# same invocation under hyperfine, the remote reset to the same commit before every run.
#
#   bench/git/run.sh                 # 20000 commits, 5000 files
#   COMMITS=2000 FILES=500 bench/git/run.sh
#
# Needs: cargo, git, python3, hyperfine, curl, docker-registry (all on the CI machine but
# hyperfine: apt-get install hyperfine).
set -euo pipefail

source "$(dirname "$0")/../lib.sh"
bench_need cargo git python3 hyperfine curl docker-registry sha256sum
commits=${COMMITS:-20000}
files=${FILES:-5000}
runs=${RUNS:-10}
# On disk (TMPDIR), not in /dev/shm: the clones and pushes are what is measured.
bench_init git "${TMPDIR:-/tmp}"

build_tagline
bench_git_env

echo "== registry with tags 1.0.0 and 1.1.0 of team/app" >&2
start_registry "$work/registry"
push_image team/app 1.0.0
push_tag team/app 1.1.0

echo "== generating a $commits-commit, $files-file repository (git fast-import)" >&2
git init -q --bare -b main "$work/repos/fleet.git"
python3 - "$commits" "$files" "$reg" <<'PY' | git --git-dir="$work/repos/fleet.git" fast-import --quiet
import sys
commits, files, reg = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = sys.stdout
def blob(data):
    b = data.encode()
    out.write(f"data {len(b)}\n"); out.write(data); out.write("\n")
for c in range(commits):
    out.write("commit refs/heads/main\n")
    out.write(f"committer bench <bench@example.com> {1700000000 + c} +0000\n")
    blob(f"commit {c}\n")
    if c == 0:
        for f in range(files):
            out.write(f"M 100644 inline app/{f // 100:03}/cm-{f}.yaml\n")
            blob(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{f}\ndata:\n  n: \"{f}\"\n")
        out.write("M 100644 inline deploy/app.yaml\n")
        blob("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n"
             "    spec:\n      containers:\n        - name: app\n"
             f"          image: {reg}/team/app:1.0.0 # {{\"$imagepolicy\": \"default:app\"}}\n")
    else:
        f = (c * 7919) % files
        out.write(f"M 100644 inline app/{f // 100:03}/cm-{f}.yaml\n")
        blob(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{f}\ndata:\n  n: \"{c}\"\n")
PY
base=$(git --git-dir="$work/repos/fleet.git" rev-parse main)
git --git-dir="$work/repos/fleet.git" gc -q --aggressive 2>/dev/null || true
du -sh "$work/repos/fleet.git" >&2

start_git_daemon "$work/repos"
url=git://127.0.0.1:$git_port/fleet.git

mkdir -p "$work/config"
cat >"$work/config/objects.yaml" <<EOF
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app}
spec: {image: $reg/team/app, interval: 1h, insecure: true}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: app}
spec:
  imageRepositoryRef: {name: app}
  policy: {semver: {range: '^1.0.0'}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet}
spec: {url: '$url', interval: 1h, ref: {branch: main}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: fleet}
spec:
  interval: 1h
  sourceRef: {kind: GitRepository, name: fleet}
  git:
    commit:
      author: {name: bench, email: bench@example.com}
  update: {path: ./deploy}
EOF

cat >"$work/git-script.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
d=\$(mktemp -d)
git clone -q --depth 1 --branch main '$url' "\$d/w"
sed -i 's|$reg/team/app:1.0.0 #|$reg/team/app:1.1.0 #|' "\$d/w/deploy/app.yaml"
git -C "\$d/w" commit -qam 'Update from image update automation'
git -C "\$d/w" push -q origin main
rm -rf "\$d"
EOF
chmod +x "$work/git-script.sh"
reset="git --git-dir=$work/repos/fleet.git update-ref refs/heads/main $base"

echo "== one update: clone, change, commit, push (remote reset before each run)" >&2
hyperfine -N --warmup 1 --runs "$runs" --prepare "$reset" \
  -n tagline "$tagline run --once --config $work/config" \
  -n git-script "$work/git-script.sh" \
  --export-json "$work/update.json" >&2

echo "== one update with a warm clone cache (state dir primed by one run; remote reset before each run)" >&2
# The cache already holds the base commit: the run fetches nothing new, resets the work tree,
# edits, commits and pushes. (The state dir also keeps the tag list, so there is no registry
# scan either: the scan interval is 1h.)
$reset
"$tagline" run --once --config "$work/config" --state-dir "$work/warm" 2>/dev/null
hyperfine -N --warmup 1 --runs "$runs" --prepare "$reset" \
  -n tagline-warm "$tagline run --once --config $work/config --state-dir $work/warm" \
  -n git-script "$work/git-script.sh" \
  --export-json "$work/warm.json" >&2

echo "== nothing to do (state dir; the branch and the policy did not move)" >&2
$reset
"$tagline" run --once --config "$work/config" --state-dir "$work/state" 2>/dev/null
hyperfine -N --warmup 2 --runs "$runs" \
  -n tagline-noop "$tagline run --once --config $work/config --state-dir $work/state" \
  -n git-ls-remote "git ls-remote $url refs/heads/main" \
  --export-json "$work/noop.json" >&2

python3 - "$work/update.json" "$work/warm.json" "$work/noop.json" <<'PY'
import json, sys
for path, ours, theirs, goal in ((sys.argv[1], "tagline", "git-script", 1.0),
                                 (sys.argv[2], "tagline-warm", "git-script", 0.2),
                                 (sys.argv[3], "tagline-noop", "git-ls-remote", 1.2)):
    r = {x["command"]: x for x in json.load(open(path))["results"]}
    a, b = r[ours]["mean"], r[theirs]["mean"]
    print(f"{ours:>13}: {a*1000:8.1f} ms   {theirs}: {b*1000:8.1f} ms   ratio {a/b:5.2f}x (goal <= {goal}x)")
PY
