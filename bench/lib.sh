# Shared by every benchmark script under bench/ (sourced, after `set -euo pipefail`): its peers
# (docker-registry, git daemon, a token server, tagline itself) run on 127.0.0.1 at free ports,
# in one work directory, and are stopped, and the directory removed, when the script ends,
# however it ends.
#
#   bench_init NAME [PARENT]       work=<a new directory in PARENT, default /dev/shm (else
#                                  TMPDIR)>; sets the trap
#   bench_need TOOL...             exits, naming the first TOOL not on PATH
#   bench_bg CMD...                runs CMD in the background, stopped at the end; sets bg_pid
#   bench_stop PID                 stops one of them now
#   free_port                      prints a free TCP port on 127.0.0.1
#   wait_port PORT                 until something accepts connections on 127.0.0.1:PORT
#   build_tagline                  tagline=<release binary> (built, or $TAGLINE when set)
#   bench_git_env                  HOME in the work directory, git identity, no system config
#   start_registry DIR [ACCESS]    docker-registry, config DIR/config.yml, storage DIR/data, log
#                                  DIR/registry.log (ACCESS=1: every request); sets port,
#                                  reg (127.0.0.1:port), base (http://reg), registry_pid
#   push_image REPO TAG            one real image (gzip'd tar layer, config, OCI manifest), over
#                                  the API; the manifest stays in $manifest for push_tag
#   push_tag REPO TAG              the same manifest under another tag (or repository)
#   link_tags ROOT FIRST TAGS REPOS FORMAT
#                                  fills the registry's storage under ROOT (…/repositories/<ns>)
#                                  by links, without the API: FIRST (holding tag 1.0.0) gets tags
#                                  1.<i/100>.<i%100> up to TAGS, and repositories FORMAT % r for r
#                                  in 1..REPOS-1 (a Python format: "r{:04d}") get its tags
#   start_git_daemon DIR           `git daemon` serving DIR's bare repositories, pushes
#                                  allowed; sets git_port

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_pids=()
work=

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bench_pids=()
  if [ -n "$work" ]; then
    cd /
    rm -rf "$work"
  fi
}

bench_init() {
  work=$(mktemp -d "${2:-/dev/shm}/tagline-bench-$1.XXXXXX" 2>/dev/null ||
    mktemp -d "${TMPDIR:-/tmp}/tagline-bench-$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
  done
}

bench_bg() {
  "$@" &
  bg_pid=$!
  bench_pids+=("$bg_pid")
}

bench_stop() {
  local pid kept=()
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for pid in "${bench_pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  bench_pids=("${kept[@]}")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2
  exit 1
}

# Built before bench_git_env moves HOME (rustup finds its toolchain through HOME).
build_tagline() {
  if [ -n "${TAGLINE:-}" ]; then
    tagline=$TAGLINE
    return
  fi
  echo "== building tagline (release)" >&2
  (cd "$bench_root" && cargo build --release --quiet --bin tagline)
  tagline=$(cd "$bench_root" && cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/tagline
}

bench_git_env() {
  export HOME=$work/home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
  export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
  export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
  unset GIT_SSL_CAINFO SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE
  mkdir -p "$HOME"
}

start_registry() {
  local dir=$1 access=${2:-0} disabled=true
  [ "$access" = 1 ] && disabled=false
  mkdir -p "$dir"
  port=$(free_port)
  reg=127.0.0.1:$port
  base=http://$reg
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: $disabled
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $reg
  secret: tagline-bench-not-a-secret
YAML
  bench_bg docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1
  registry_pid=$bg_pid
  for _ in $(seq 200); do curl -sf -o /dev/null "$base/v2/" && return 0; sleep 0.05; done
  echo "docker-registry did not start" >&2
  exit 1
}

push_image() {
  local repo=$1 tag=$2 dir layer_hex config_hex diff_id
  dir=$(mktemp -d "$work/image.XXXXXX")
  printf 'hello\n' >"$dir/hello"
  tar cf "$dir/layer.tar" -C "$dir" hello
  gzip -kn "$dir/layer.tar"
  diff_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id" >"$dir/config.json"
  layer_hex=$(bench_upload "$repo" "$dir/layer.tar.gz")
  config_hex=$(bench_upload "$repo" "$dir/config.json")
  manifest=$work/manifest.json
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
    "$config_hex" "$(stat -c %s "$dir/config.json")" "$layer_hex" "$(stat -c %s "$dir/layer.tar.gz")" >"$manifest"
  rm -rf "$dir"
  push_tag "$repo" "$tag"
}

# One blob into REPO; prints its hex digest.
bench_upload() {
  local repo=$1 file=$2 hex loc sep
  hex=$(sha256sum "$file" | cut -d' ' -f1)
  loc=$(curl -sf -D - -o /dev/null -X POST "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $loc in /*) loc=$base$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$loc${sep}digest=sha256:$hex"
  echo "$hex"
}

push_tag() {
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$manifest" "$base/v2/$1/manifests/$2"
}

# docker-registry lists a repository's tags by reading `_manifests/tags/`, and reads a tag's
# link through a symlink: FIRST's other tags are symlinks to its 1.0.0 directory; every other
# repository gets a copy of FIRST's small metadata tree (layer and revision links) and a
# symlink to its `_manifests/tags`.
link_tags() {
  python3 - "$@" <<'PY'
import os, shutil, sys
root, first, tags, repos, fmt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
src = os.path.join(root, first)
tagdir = os.path.join(src, "_manifests", "tags")
for i in range(1, tags):
    os.symlink("1.0.0", os.path.join(tagdir, f"1.{i // 100}.{i % 100}"))
for r in range(1, repos):
    d = os.path.join(root, fmt.format(r))
    shutil.copytree(src, d, symlinks=True, ignore=shutil.ignore_patterns("tags"))
    os.symlink(tagdir, os.path.join(d, "_manifests", "tags"))
PY
}

start_git_daemon() {
  git_port=$(free_port)
  bench_bg git daemon --reuseaddr --listen=127.0.0.1 --port="$git_port" --base-path="$1" \
    --export-all --enable=receive-pack >"$work/git-daemon.log" 2>&1
  wait_port "$git_port"
}
