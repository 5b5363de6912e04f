# Shared by the scanner benchmark scripts (sourced): a docker-registry on 127.0.0.1 with its
# storage in the work directory, and one small real image pushed over the API.
#
#   start_registry WORK [ACCESS_LOG]   sets port, base, pid; ACCESS_LOG=1 logs every request
#   push_image REPO TAG                one image (a gzip'd tar layer, a config, an OCI manifest)

start_registry() {
  local work=$1 access=${2:-0} disabled=true
  [ "$access" = 1 ] && disabled=false
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$work/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: $disabled
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
  secret: tagline-bench-not-a-secret
YAML
  docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
  pid=$!
  base=http://127.0.0.1:$port
  for _ in $(seq 100); do curl -sf -o /dev/null "$base/v2/" && return 0; sleep 0.05; done
  echo "docker-registry did not start" >&2
  return 1
}

push_image() {
  local repo=$1 tag=$2 dir layer_hex config_hex diff_id
  dir=$(mktemp -d)
  printf 'hello\n' >"$dir/hello"
  tar cf "$dir/layer.tar" -C "$dir" hello
  gzip -kn "$dir/layer.tar"
  diff_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id" >"$dir/config.json"
  upload() {
    local file=$1 hex loc
    hex=$(sha256sum "$file" | cut -d' ' -f1)
    loc=$(curl -sf -D - -o /dev/null -X POST "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    case $loc in /*) loc=$base$loc ;; esac
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$loc&digest=sha256:$hex"
    echo "$hex"
  }
  layer_hex=$(upload "$dir/layer.tar.gz")
  config_hex=$(upload "$dir/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
    "$config_hex" "$(stat -c %s "$dir/config.json")" "$layer_hex" "$(stat -c %s "$dir/layer.tar.gz")" >"$dir/manifest.json"
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$dir/manifest.json" "$base/v2/$repo/manifests/$tag"
  rm -rf "$dir"
}
