// Reference side of the policy benchmark (run by benches/policy.rs, one mode per call).
//   node node_bench.js <tags-file> semver <range> <min-ms>   valid() + maxSatisfying()
//   node node_bench.js <tags-file> numerical <regex> <min-ms> filter + $1 + parseFloat, max
//   node node_bench.js <tags-file> alphabetical - <min-ms>    greatest string
// Prints one JSON line: {"iterations", "seconds_per_iteration" (median), "chosen"}.
'use strict';
const fs = require('fs');
const semver = require('semver');

const [file, mode, arg, minMsText] = process.argv.slice(2);
const tags = fs.readFileSync(file, 'utf8').split('\n').filter((t) => t.length > 0);
const minMs = Number(minMsText || '300');

function semverOnce() {
  const versions = tags.filter((t) => semver.valid(t) !== null);
  return semver.maxSatisfying(versions, arg);
}

function numericalOnce() {
  const re = new RegExp(arg);
  let best = null;
  let bestValue = -Infinity;
  for (const t of tags) {
    const m = re.exec(t);
    if (m === null) continue;
    const n = Number(m[1]);
    if (Number.isNaN(n)) throw new Error(`not a number: ${m[1]}`);
    if (best === null || n > bestValue) {
      best = t;
      bestValue = n;
    }
  }
  return best;
}

function alphabeticalOnce() {
  let best = null;
  for (const t of tags) {
    if (best === null || t > best) best = t;
  }
  return best;
}

const once = { semver: semverOnce, numerical: numericalOnce, alphabetical: alphabeticalOnce }[mode];
if (!once) throw new Error(`unknown mode ${mode}`);

// Warm up (lets the JIT settle), then time until min-ms has passed (at least 3 runs, or 1
// for lists of a million: one run of node's semver over them takes seconds).
let chosen = once();
const minRuns = tags.length >= 1000000 ? 1 : 3;
const times = [];
const start = process.hrtime.bigint();
while (times.length < minRuns || Number(process.hrtime.bigint() - start) / 1e6 < minMs) {
  const t0 = process.hrtime.bigint();
  chosen = once();
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({
  iterations: times.length,
  seconds_per_iteration: times[Math.floor(times.length / 2)],
  chosen,
}));
