#!/usr/bin/env bash
# Scanner benchmark at fleet scale: REPOS repositories × TAGS tags on one local docker-registry.
# One `tagline run --once` over a generated config folder (one ImageRepository per repository)
# against a loop of `skopeo list-tags`, one process per repository. Prints wall time, peak RSS,
# and the requests each side made (from the registry's access log), then the ratios.
#
#   bench/scanner/many.sh                     # REPOS=1000 TAGS=1000
#   REPOS=200 TAGS=1000 bench/scanner/many.sh
#   SKOPEO_REPOS=100 bench/scanner/many.sh    # time skopeo on the first 100 only, extrapolated
#   AUTH=token bench/scanner/many.sh          # bearer-token auth: a token server (token_server.py)
#                                             # issues ES256 JWTs the registry verifies
#   SKOPEO_REPOS=0 bench/scanner/many.sh      # tagline and the floor only (no skopeo loop)
#   WRAP='perf record -g -o /tmp/many.perf' bench/scanner/many.sh   # tagline run under WRAP
#
# Also measured, as a floor: what docker-registry itself costs for the same REPOS tag listings,
# with curl over one keep-alive connection (sequential), and over 8 (curl --parallel), both
# anonymous.
#
# Populating is fast: one image is pushed over the API to the first repository, whose other
# tags are symlinks to its first tag's directory in the registry's storage (plain files:
# docker-registry lists a repository's tags by reading `_manifests/tags/`, and reads a tag's
# link through the symlink); every other repository gets a copy of the first one's small
# metadata tree (layer and revision links) and a symlink to its `_manifests/tags`.
#
# Needs docker-registry, skopeo, curl, python3 (with python3-cryptography for AUTH=token). Registry on 127.0.0.1, a free port, storage in
# /dev/shm; all removed when the script ends.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
REPOS=${REPOS:-1000}
TAGS=${TAGS:-1000}
SKOPEO_REPOS=${SKOPEO_REPOS:-$REPOS}
AUTH=${AUTH:-anonymous}
case $AUTH in anonymous | token) ;; *) echo "AUTH is anonymous or token" >&2; exit 1 ;; esac
source "$here/../lib.sh"
bench_need docker-registry skopeo curl python3 sha256sum

build_tagline
bin=$tagline

bench_init many
calc() { python3 -c "print($1)"; }

start_registry "$work" 1
cd "$work"
first=bench/r0000
push_image "$first" 1.0.0

t0=$(date +%s.%N)
link_tags "$work/data/docker/registry/v2/repositories/bench" r0000 "$TAGS" "$REPOS" 'r{:04d}'
t1=$(date +%s.%N)
last=$(printf 'bench/r%04d' $((REPOS - 1)))
count=$(curl -sf "$base/v2/$last/tags/list" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tags"]))')
[ "$count" = "$TAGS" ] || { echo "registry lists $count tags in $last, expected $TAGS" >&2; exit 1; }
curl -sf -o /dev/null -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$base/v2/$last/manifests/1.$(( (TAGS - 1) / 100 )).$(( (TAGS - 1) % 100 ))" \
  || { echo "a symlinked tag does not resolve" >&2; exit 1; }
printf '== populated %d repositories x %d tags in %.1f s\n' "$REPOS" "$TAGS" "$(calc "$t1 - $t0")"

# The floor: the registry's own cost for REPOS tag listings, anonymous, curl keep-alive.
for r in $(seq 0 $((REPOS - 1))); do
  printf 'url = "%s/v2/bench/r%04d/tags/list"\noutput = /dev/null\n' "$base" "$r"
done >urls.cfg
t0=$(date +%s.%N)
curl -sf -K urls.cfg
t1=$(date +%s.%N)
curl -sf --no-progress-meter --parallel --parallel-max 8 -K urls.cfg 2>/dev/null
t2=$(date +%s.%N)
floor_seq=$(calc "$t1 - $t0"); floor_par=$(calc "$t2 - $t1")

if [ "$AUTH" = token ]; then
  # Same storage, now behind bearer-token auth.
  bench_stop "$registry_pid"
  mkdir -p token
  bench_bg python3 "$here/token_server.py" "$work/token" tagline-bench tagline-bench-issuer
  for _ in $(seq 100); do [ -f token/port ] && break; sleep 0.05; done
  [ -f token/port ] || { echo "token server did not start" >&2; exit 1; }
  realm=http://127.0.0.1:$(cat token/port)/token
  # The token server's own cost for REPOS tokens, curl keep-alive, sequential (its requests
  # are not counted below: the counts are taken as differences).
  for r in $(seq 0 $((REPOS - 1))); do
    printf 'url = "%s?service=tagline-bench&scope=repository:bench/r%04d:pull"\noutput = /dev/null\n' "$realm" "$r"
  done >token-urls.cfg
  t0=$(date +%s.%N)
  curl -sf -K token-urls.cfg
  t1=$(date +%s.%N)
  token_floor=$(calc "$t1 - $t0")
  cat >>"$work/config.yml" <<YAML
auth:
  token:
    realm: $realm
    service: tagline-bench
    issuer: tagline-bench-issuer
    rootcertbundle: $work/token/signing.crt
YAML
  bench_bg docker-registry serve "$work/config.yml" >>"$work/registry.log" 2>&1
  registry_pid=$bg_pid
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v2/" || true)
    [ "$code" = 401 ] && break
    sleep 0.05
  done
  [ "$code" = 401 ] || { echo "docker-registry with token auth did not start" >&2; exit 1; }
fi
token_requests() { if [ -f token/requests ]; then wc -l <token/requests; else echo 0; fi; }
refused() { grep -c '"GET /v2/[^"]*" 401 ' "$work/registry.log" || true; }

mkdir -p objects
python3 - "$work/objects/repositories.yaml" "127.0.0.1:$port" "$REPOS" <<'PY'
import sys
path, host, repos = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "w") as f:
    for r in range(repos):
        f.write(f"""---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: r{r:04d}
spec:
  image: {host}/bench/r{r:04d}
  interval: 1h
  insecure: true
""")
PY

reg_cpu() { python3 -c "import os; t=open('/proc/$registry_pid/stat').read().rsplit(')',1)[1].split(); print((int(t[11])+int(t[12]))/os.sysconf('SC_CLK_TCK'))"; }
requests() { grep -c '"GET /v2/' "$work/registry.log" || true; }
tag_requests() { grep -c '/tags/list' "$work/registry.log" || true; }

b_all=$(requests); b_tags=$(tag_requests); b_tok=$(token_requests); b_401=$(refused); r0=$(reg_cpu)
/usr/bin/time -f '%e %M %U %S' -o tagline.time ${WRAP:-} "$bin" run --once --config objects 2>tagline.err
tl_time=$(cut -d' ' -f1 tagline.time); tl_rss=$(cut -d' ' -f2 tagline.time)
tl_cpu=$(calc "$(cut -d' ' -f3 tagline.time) + $(cut -d' ' -f4 tagline.time)")
r1=$(reg_cpu)
tl_all=$(( $(requests) - b_all )); tl_tags=$(( $(tag_requests) - b_tags ))
tl_tok=$(( $(token_requests) - b_tok )); tl_401=$(( $(refused) - b_401 ))
ok=$(grep -c "scanned $TAGS tags" tagline.err || true)
[ "$ok" = "$REPOS" ] || { echo "tagline scanned $ok of $REPOS repositories fully:"; grep -v "scanned $TAGS tags" tagline.err | head -5; exit 1; }

if [ "$SKOPEO_REPOS" = 0 ]; then
  echo "== $REPOS repositories x $TAGS tags, $AUTH plain HTTP; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '   tagline run --once: %.2f s wall, %.2f s CPU (the registry serving it %.2f s), peak RSS %.1f MB\n' \
    "$tl_time" "$tl_cpu" "$(calc "$r1 - $r0")" "$(calc "$tl_rss / 1024")"
  printf '   registry requests %d (tags/list %d, refused 401 %d), token requests %d\n' "$tl_all" "$tl_tags" "$tl_401" "$tl_tok"
  printf '   floor, curl anonymous keep-alive: %.2f s on 1 connection, %.2f s on 8; tagline / floor: %.2fx, %.2fx\n' \
    "$floor_seq" "$floor_par" "$(calc "$tl_time / $floor_seq")" "$(calc "$tl_time / $floor_par")"
  exit 0
fi

b_all=$(requests); b_tags=$(tag_requests); b_tok=$(token_requests); b_401=$(refused)
mkdir -p home
t0=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o skopeo.time bash -c '
for r in $(seq 0 $(($1 - 1))); do
  HOME=$2/home skopeo list-tags --tls-verify=false --no-creds "docker://127.0.0.1:$3/$(printf "bench/r%04d" "$r")" >/dev/null
done' loop "$SKOPEO_REPOS" "$work" "$port"
t1=$(date +%s.%N)
sk_cpu=$(calc "($(cut -d' ' -f1 skopeo.time) + $(cut -d' ' -f2 skopeo.time)) * $REPOS / $SKOPEO_REPOS")
r2=$(reg_cpu)
sk_time=$(calc "($t1 - $t0) * $REPOS / $SKOPEO_REPOS")
sk_all=$(( ($(requests) - b_all) * REPOS / SKOPEO_REPOS )); sk_tags=$(( ($(tag_requests) - b_tags) * REPOS / SKOPEO_REPOS ))
sk_tok=$(( ($(token_requests) - b_tok) * REPOS / SKOPEO_REPOS )); sk_401=$(( ($(refused) - b_401) * REPOS / SKOPEO_REPOS ))
sk_rss=$(/usr/bin/time -f '%M' env HOME="$work/home" skopeo list-tags --tls-verify=false --no-creds "docker://127.0.0.1:$port/$first" 2>&1 >/dev/null | tail -1)

echo "== $REPOS repositories x $TAGS tags, docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}'), $AUTH plain HTTP; load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$SKOPEO_REPOS" = "$REPOS" ] || echo "   (skopeo timed on $SKOPEO_REPOS repositories, scaled to $REPOS)"
printf '   CPU (user+sys): tagline %.2f s, the registry serving it %.2f s; skopeo loop %.2f s, the registry serving it %.2f s\n' \
  "$tl_cpu" "$(calc "$r1 - $r0")" "$sk_cpu" "$(calc "($r2 - $r1) * $REPOS / $SKOPEO_REPOS")"
TOKEN_FLOOR=${token_floor:-} python3 - "$tl_time" "$tl_rss" "$tl_all" "$tl_tags" "$sk_time" "$sk_rss" "$sk_all" "$sk_tags" "$REPOS" \
  "$tl_tok" "$tl_401" "$sk_tok" "$sk_401" "$floor_seq" "$floor_par" <<'PY'
import os, sys
tl_t, tl_rss, tl_all, tl_tags, sk_t, sk_rss, sk_all, sk_tags, repos, tl_tok, tl_401, sk_tok, sk_401, f_seq, f_par = sys.argv[1:]
tl_t, sk_t, f_seq, f_par = float(tl_t), float(sk_t), float(f_seq), float(f_par)
repos = int(repos)
print(f"{'':<28}{'wall s':>9}{'peak RSS':>12}{'registry':>10}{'tags/list':>11}{'401s':>7}{'tokens':>8}{'reg/repo':>10}{'tok/repo':>10}")
for name, t, rss, a, tags, r401, tok in (
    ("tagline run --once", tl_t, tl_rss, tl_all, tl_tags, tl_401, tl_tok),
    ("skopeo list-tags loop", sk_t, sk_rss, sk_all, sk_tags, sk_401, sk_tok),
):
    print(f"{name:<28}{t:>9.2f}{int(rss)/1024:>9.1f} MB{int(a):>10}{int(tags):>11}{int(r401):>7}{int(tok):>8}"
          f"{int(a)/repos:>10.2f}{int(tok)/repos:>10.2f}")
print(f"{'floor: curl, 1 connection':<28}{f_seq:>9.2f}{'':>12}{repos:>10}{repos:>11}   (anonymous, keep-alive, sequential)")
print(f"{'floor: curl, 8 connections':<28}{f_par:>9.2f}{'':>12}{repos:>10}{repos:>11}   (anonymous, keep-alive, --parallel-max 8)")
if os.environ.get("TOKEN_FLOOR"):
    print(f"{'floor: curl, token server':<28}{float(os.environ['TOKEN_FLOOR']):>9.2f}{'':>12}{0:>10}{0:>11}{0:>7}{repos:>8}   (keep-alive, sequential)")
print(f"tagline / skopeo loop: {tl_t / sk_t:.3f}x time (goal <= 0.1x), "
      f"{int(tl_all) / int(sk_all):.2f}x registry requests; "
      f"tagline / curl floor: {tl_t / f_seq:.2f}x (1 connection), {tl_t / f_par:.2f}x (8)")
print(f"goal: at most one request per page plus one token per repository: "
      f"{int(tl_all) / repos:.2f} registry requests and {int(tl_tok) / repos:.2f} tokens per repository "
      f"(each repository here is one page)")
PY
