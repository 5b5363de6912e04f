#!/usr/bin/env bash
# Quickstart, with no internet: builds tagline, starts a throwaway OCI registry (Debian's
# docker-registry, basic auth) and a Git server (git http-backend behind lighttpd) on
# 127.0.0.1, pushes tags 1.0.0 1.1.0 1.2.0 2.0.0 of team/app, seeds a repository from
# config/samples/repo, runs `tagline run --once` on config/samples (with the real addresses)
# and shows the commit tagline pushed. Everything lives in a temp dir, removed on exit.
#
# Needs cargo, git, curl, tar, gzip, sha256sum and the Debian packages docker-registry,
# apache2-utils (htpasswd) and lighttpd (.ci/run installs them).
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
samples=$repo_root/config/samples
registry_user=quickstart
registry_pass=quickstart-password

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

for tool in cargo git curl tar gzip sha256sum docker-registry htpasswd lighttpd; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing. On Debian: apt-get install \
docker-registry apache2-utils lighttpd git curl (or run .ci/run, which installs them)."
done
http_backend=/usr/lib/git-core/git-http-backend
[ -x "$http_backend" ] || http_backend=$(git --exec-path)/git-http-backend
[ -x "$http_backend" ] || die "git-http-backend not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/tagline-quickstart.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# A port on 127.0.0.1 that nothing answers on right now.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# wait_for <pid> <what> <log> <command...>: until the command succeeds, the process dies
# (then show its log) or 30 s pass.
wait_for() {
  local pid=$1 what=$2 log=$3
  shift 3
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      die "$what exited during start-up"
    fi
    sleep 0.1
  done
  cat "$log" >&2
  die "$what did not answer within 30 s"
}

say "Building tagline"
(cd "$repo_root" && cargo build --quiet --bin tagline)
target_dir=$(cd "$repo_root" && cargo metadata --no-deps --format-version 1 |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
tagline=$target_dir/debug/tagline
[ -x "$tagline" ] || die "built binary not found at $tagline"

# git with no user or system config and none of the host's TLS variables: same result
# on every machine.
export HOME=$work/home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
unset GIT_SSL_CAINFO GIT_SSL_CAPATH GIT_DIR GIT_WORK_TREE XDG_CONFIG_HOME
mkdir -p "$HOME"

say "Starting a registry (docker-registry, basic auth) on 127.0.0.1"
mkdir -p "$work/registry/data"
htpasswd -Bbn "$registry_user" "$registry_pass" >"$work/registry/htpasswd"
registry_port=$(free_port)
registry=127.0.0.1:$registry_port
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: $registry
  secret: quickstart-not-a-secret
auth:
  htpasswd:
    realm: quickstart
    path: $work/registry/htpasswd
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
registry_answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$registry/v2/")
  [ "$code" = 401 ]
}
wait_for "${pids[-1]}" docker-registry "$work/registry/log" registry_answers
echo "registry: http://$registry (user $registry_user)" >&2

say "Pushing team/app tags 1.0.0 1.1.0 1.2.0 2.0.0"
image_dir=$work/image
mkdir -p "$image_dir/rootfs"
echo "hello from the tagline quickstart" >"$image_dir/rootfs/hello.txt"
tar -C "$image_dir/rootfs" --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -cf "$image_dir/layer.tar" hello.txt
gzip -n -c "$image_dir/layer.tar" >"$image_dir/layer.tar.gz"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha "$image_dir/layer.tar")" >"$image_dir/config.json"
curl_registry() { curl -sSf -u "$registry_user:$registry_pass" "$@"; }
push_blob() {
  local file=$1 digest location
  digest=sha256:$(sha "$file")
  location=$(curl_registry -X POST -D - -o /dev/null "http://$registry/v2/team/app/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $location in /*) location=http://$registry$location ;; esac
  case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl_registry -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$file" -o /dev/null "$location${sep}digest=$digest"
}
push_blob "$image_dir/layer.tar.gz"
push_blob "$image_dir/config.json"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$(sha "$image_dir/config.json")" "$(size "$image_dir/config.json")" \
  "$(sha "$image_dir/layer.tar.gz")" "$(size "$image_dir/layer.tar.gz")" >"$image_dir/manifest.json"
for tag in 1.0.0 1.1.0 1.2.0 2.0.0; do
  curl_registry -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$image_dir/manifest.json" -o /dev/null "http://$registry/v2/team/app/manifests/$tag"
done
echo "tags: $(curl_registry "http://$registry/v2/team/app/tags/list")" >&2

say "Starting a Git server (git http-backend behind lighttpd) on 127.0.0.1"
git_root=$work/git/repos
mkdir -p "$git_root" "$work/git/www" "$work/git/upload"
git_port=$(free_port)
cat >"$work/git/lighttpd.conf" <<EOF
server.modules = ("mod_alias", "mod_setenv", "mod_cgi")
server.bind = "127.0.0.1"
server.port = $git_port
server.document-root = "$work/git/www"
server.upload-dirs = ("$work/git/upload")
server.errorlog = "$work/git/error.log"
server.max-request-size = 0
alias.url = ("/git" => "$http_backend")
\$HTTP["url"] =~ "^/git" {
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "GIT_PROJECT_ROOT" => "$git_root",
        "GIT_HTTP_EXPORT_ALL" => "",
        "GIT_CONFIG_NOSYSTEM" => "1",
        "HOME" => "$HOME"
    )
}
EOF
lighttpd -D -f "$work/git/lighttpd.conf" >"$work/git/log" 2>&1 &
pids+=($!)
git_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$git_port"); }
wait_for "${pids[-1]}" lighttpd "$work/git/log" git_answers
git_url=http://127.0.0.1:$git_port/git/sample.git
echo "git: $git_url" >&2

say "Seeding $git_url from config/samples/repo"
bare=$git_root/sample.git
git init -q --bare -b main "$bare"
git -C "$bare" config http.receivepack true
seed=$work/seed
cp -R "$samples/repo" "$seed"
find "$seed" -type f -exec sed -i "s|localhost:5000|$registry|g" {} +
git -C "$seed" init -q -b main
git -C "$seed" add -A
git -C "$seed" -c user.name=Quickstart -c user.email=quickstart@example.com \
  commit -q -m "Seed the sample repository"
git -C "$seed" push -q "$git_url" main
seeded=$(git --git-dir "$bare" rev-parse main)

say "Rendering config/samples with the real addresses"
config=$work/config
mkdir -p "$config"
for f in "$samples"/*.yaml; do
  sed -e "s|http://localhost:8080/git/sample.git|$git_url|g" \
    -e "s|localhost:5000|$registry|g" "$f" >"$config/$(basename "$f")"
done
ls "$config" >&2

say "tagline run --once --config $config"
set +e
"$tagline" run --once --config "$config" --state-dir "$work/state"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  die "tagline run --once failed (exit $status): see its messages above."
fi

pushed=$(git --git-dir "$bare" rev-parse main)
if [ "$pushed" = "$seeded" ]; then
  die "tagline run --once exited 0 but pushed nothing to $git_url (main is still the seed commit)."
fi
say "The commit tagline pushed (git log -1 -p main)"
git --git-dir "$bare" --no-pager log -1 -p --stat main
