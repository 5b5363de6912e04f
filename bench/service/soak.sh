#!/usr/bin/env bash
# Service soak: 100 ImageRepositories x 1,000 tags, 100 ImagePolicies, 10
# ImageUpdateAutomations (10 policies each, one Git repository each), all on 1-minute
# intervals, against a local docker-registry and `git daemon`. `tagline run` (the service) runs
# for a bounded time while /proc is sampled every second: peak RSS (VmHWM), CPU time, open fds
# and threads. Printed against the goals: RSS <= 30 MB, idle CPU < 1% of one core, flat fd and
# thread counts. "Idle" is everything after the first pass (which makes the 10 commits).
#
#   bench/service/soak.sh                       # DURATION=180 seconds
#   DURATION=600 REPOS=100 TAGS=1000 bench/service/soak.sh
#   TAGLINE=/path/to/tagline bench/service/soak.sh   # skip the build
#
# Needs: cargo, docker-registry, git, curl, python3 (the registry is populated the way
# bench/scanner/many.sh does it, with bench/lib.sh's push_image and link_tags: one image pushed
# over the API, then its tag directory linked).
set -euo pipefail

source "$(dirname "$0")/../lib.sh"
DURATION=${DURATION:-180}
REPOS=${REPOS:-100}
TAGS=${TAGS:-1000}
AUTOMATIONS=${AUTOMATIONS:-10}
INTERVAL=${INTERVAL:-1m}
bench_need docker-registry git curl python3 sha256sum
[ $((REPOS % AUTOMATIONS)) -eq 0 ] || { echo "REPOS must be a multiple of AUTOMATIONS" >&2; exit 1; }

build_tagline
bench_init soak
bench_git_env

echo "== registry: $REPOS repositories x $TAGS tags" >&2
start_registry "$work"
reg_port=$port
cd "$work"
push_image soak/app-0 1.0.0
# Tags 1.0.0 ... 1.<n/100>.<n%100>, as bench/scanner/many.sh makes them.
link_tags "$work/data/docker/registry/v2/repositories/soak" app-0 "$TAGS" "$REPOS" 'app-{}'
count=$(curl -sf "$base/v2/soak/app-$((REPOS - 1))/tags/list" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tags"]))')
[ "$count" = "$TAGS" ] || { echo "registry lists $count tags, expected $TAGS" >&2; exit 1; }
latest="1.$(((TAGS - 1) / 100)).$(((TAGS - 1) % 100))"

echo "== git daemon: $AUTOMATIONS repositories, $((REPOS / AUTOMATIONS)) marked Deployments each" >&2
mkdir -p "$work/git" "$work/config"
per=$((REPOS / AUTOMATIONS))
for a in $(seq 0 $((AUTOMATIONS - 1))); do
  git init -q --bare -b main "$work/git/fleet-$a.git"
  tree=$work/tree-$a
  mkdir -p "$tree/deploy"
  for j in $(seq 0 $((per - 1))); do
    r=$((a * per + j))
    cat >"$tree/deploy/app-$j.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-$j
  namespace: team-$a
spec:
  template:
    spec:
      containers:
        - name: app
          image: 127.0.0.1:$reg_port/soak/app-$r:1.0.0 # {"\$imagepolicy": "team-$a:app-$j"}
YAML
  done
  git -C "$tree" init -q -b main
  git -C "$tree" add -A
  git -C "$tree" commit -qm initial
  git -C "$tree" push -q "$work/git/fleet-$a.git" main
done
start_git_daemon "$work/git"

python3 - "$work/config" "$reg_port" "$git_port" "$REPOS" "$AUTOMATIONS" "$INTERVAL" <<'PY'
import os, sys
out, reg, git, repos, automations, interval = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
per = repos // automations
for a in range(automations):
    docs = []
    for j in range(per):
        r = a * per + j
        docs.append(f"""apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app-{j}, namespace: team-{a}}}
spec: {{image: 127.0.0.1:{reg}/soak/app-{r}, interval: {interval}, insecure: true}}""")
        docs.append(f"""apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app-{j}, namespace: team-{a}}}
spec:
  imageRepositoryRef: {{name: app-{j}}}
  policy: {{semver: {{range: '^1.0.0'}}}}""")
    docs.append(f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: fleet, namespace: team-{a}}}
spec: {{url: 'git://127.0.0.1:{git}/fleet-{a}.git', interval: {interval}, ref: {{branch: main}}}}""")
    docs.append(f"""apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: fleet, namespace: team-{a}}}
spec:
  interval: {interval}
  sourceRef: {{kind: GitRepository, name: fleet}}
  git:
    commit:
      author: {{name: soak, email: soak@example.com}}
  update: {{path: ./deploy, strategy: Setters}}""")
    with open(os.path.join(out, f"team-{a}.yaml"), "w") as f:
        f.write("\n---\n".join(docs) + "\n")
PY

echo "== tagline run for ${DURATION}s (sampling /proc every second)" >&2
http_port=$(free_port)
bench_bg "$tagline" run --config "$work/config" --state-dir "$work/state" \
  --listen "127.0.0.1:$http_port" --log-format json 2>"$work/tagline.log"
tpid=$bg_pid
tick=$(getconf CLK_TCK)
ms() { echo $(($(date +%s%N) / 1000000)); }
start=$(ms)
first_pass=
: >"$work/samples"
while :; do
  elapsed_ms=$(($(ms) - start))
  [ "$elapsed_ms" -lt $((DURATION * 1000)) ] || break
  elapsed=$((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))
  [ -d "/proc/$tpid" ] || { echo "tagline exited:" >&2; tail -20 "$work/tagline.log" >&2; exit 1; }
  if [ -z "$first_pass" ]; then
    passes=$(curl -sf "127.0.0.1:$http_port/api/v1/status" 2>/dev/null |
      grep -o '"passes": *[0-9]*' | grep -o '[0-9]*$' || true)
    [ "${passes:-0}" -ge 1 ] && first_pass=$elapsed
  fi
  read -r utime stime < <(awk '{print $14, $15}' "/proc/$tpid/stat")
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$tpid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$tpid/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$tpid/status")
  fds=$(find "/proc/$tpid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  echo "$elapsed $((utime + stime)) $rss $hwm $threads $fds ${first_pass:+idle}" >>"$work/samples"
  sleep 1
done
# What the resident memory is at the end: anonymous (heap, stacks) against file-backed (the
# binary's pages) and, with SMAPS=1, the largest mappings.
rss_split=$(awk '/^RssAnon|^RssFile/ {printf "%s %.1f MB  ", $1, $2 / 1024}' "/proc/$tpid/status")
if [ "${SMAPS:-0}" = 1 ]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6 ? $6 : "[anon " $1 "]"} /^Rss:/ {rss[name] += $2}
       END {for (n in rss) if (rss[n] >= 256) printf "%8d kB  %s\n", rss[n], n}' "/proc/$tpid/smaps" |
    sort -rn | head -15 >"$work/smaps.top"
fi
commits=0
for a in $(seq 0 $((AUTOMATIONS - 1))); do
  commits=$((commits + $(git --git-dir="$work/git/fleet-$a.git" rev-list --count main) - 1))
done
pinned=$(git --git-dir="$work/git/fleet-0.git" show main:deploy/app-0.yaml | grep -c ":$latest " || true)
failed=$(grep -c '"level":"error"' "$work/tagline.log" || true)

RSS_SPLIT=$rss_split python3 - "$work/samples" "$tick" "$DURATION" "$commits" "$AUTOMATIONS" "$pinned" "$failed" <<'PY'
import os, sys
path, tick, duration, commits, automations, pinned, failed = sys.argv[1:]
tick = int(tick)
rows = [l.split() for l in open(path) if l.strip()]
s = [(float(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), len(r) > 6) for r in rows]
if not s:
    sys.exit("no samples")
idle = [r for r in s if r[6]]
peak = max(r[3] for r in s) / 1024
print(f"samples: {len(s)} over {s[-1][0]:.0f}s; first pass done after {idle[0][0]:.1f}s" if idle else "first pass never finished")
print(f"commits: {commits} (expected {automations}); fleet-0 app-0 at the latest tag: {'yes' if pinned != '0' else 'NO'}; error lines: {failed}")
def verdict(ok):
    return "ok" if ok else "MISSED"
print(f"{'measure':<34}{'value':>14}  goal")
print(f"{'peak RSS (VmHWM)':<34}{peak:>11.1f} MB  <= 30 MB  {verdict(peak <= 30)}")
print(f"{'RSS at the end':<34}{s[-1][2] / 1024:>11.1f} MB  ({os.environ.get('RSS_SPLIT', '').strip()})")
print(f"{'CPU time, first pass':<34}{(idle[0][1] if idle else s[-1][1]) / tick:>12.2f} s")
if len(idle) >= 2:
    cpu = (idle[-1][1] - idle[0][1]) / tick
    wall = idle[-1][0] - idle[0][0]
    pct = 100 * cpu / wall
    print(f"{'CPU after the first pass':<34}{pct:>12.2f} %  < 1% of a core  {verdict(pct < 1)}  ({cpu:.2f} s in {wall:.0f} s, rescans included)")
    # Flat: the second half of the idle phase never goes above the first half's highest.
    for name, col in (("open fds", 5), ("threads", 4)):
        v = [r[col] for r in idle]
        half = len(v) // 2
        flat = max(v[half:]) <= max(v[:half] or v)
        label = f"{name} after the first pass"
        print(f"{label:<34}{min(v):>6} .. {max(v):<5}  flat  {verdict(flat)}  (first {v[0]}, last {v[-1]}; max first half {max(v[:half] or v)}, second half {max(v[half:])})")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ ! -f "$work/smaps.top" ] || { echo "largest mappings by RSS at the end:"; cat "$work/smaps.top"; }
