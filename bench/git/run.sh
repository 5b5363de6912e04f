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

root=$(cd "$(dirname "$0")/../.." && pwd)
commits=${COMMITS:-20000}
files=${FILES:-5000}
runs=${RUNS:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/tagline-bench-git.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Built before HOME moves (rustup finds its toolchain through HOME).
echo "== building tagline (release)" >&2
(cd "$root" && cargo build --release --quiet --bin tagline)
target_dir=$(cd "$root" && cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
tagline=$target_dir/release/tagline

export HOME=$work/home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
unset GIT_SSL_CAINFO SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE
mkdir -p "$HOME"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  exit 1
}

echo "== registry with tags 1.0.0 and 1.1.0 of team/app" >&2
reg_port=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry/data}}
http: {addr: 127.0.0.1:$reg_port, secret: bench}
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
wait_port "$reg_port"
reg=127.0.0.1:$reg_port
mkdir -p "$work/layer"
echo bench >"$work/layer/file"
tar -C "$work/layer" --mtime=@0 --owner=0 --group=0 -cf "$work/layer.tar" file
gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha256sum "$work/layer.tar" | cut -d' ' -f1)" >"$work/config.json"
push_blob() {
  local loc sep
  loc=$(curl -sSf -X POST -D - -o /dev/null "http://$reg/v2/team/app/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $loc in /*) loc=http://$reg$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" -o /dev/null \
    "$loc${sep}digest=sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}
push_blob "$work/layer.tar.gz"
push_blob "$work/config.json"
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$(sha256sum "$work/config.json" | cut -d' ' -f1)" "$(wc -c <"$work/config.json")" \
  "$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)" "$(wc -c <"$work/layer.tar.gz")")
for tag in 1.0.0 1.1.0; do
  curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$manifest" -o /dev/null "http://$reg/v2/team/app/manifests/$tag"
done

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

git_port=$(free_port)
git daemon --reuseaddr --listen=127.0.0.1 --port="$git_port" --base-path="$work/repos" \
  --export-all --enable=receive-pack >"$work/daemon.log" 2>&1 &
pids+=($!)
wait_port "$git_port"
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
