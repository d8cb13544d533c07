#!/usr/bin/env python3
"""Whole-process time of `warden run` of a cached hello, for two warden binaries (say,
before and after a change), alternated run by run: 5 warm-ups each (which also fill
each binary's module cache), then 30 timed runs each. Each binary has its own audit
log; both share a fresh cache directory.

Usage: benches/cli-compare.py OLD NEW REPO [POLICY]

REPO is a checkout holding examples/plugins/hello.wasm. Without POLICY, the built-in
policy (plugins run in a worker); to time plugins in warden's own process, pass a
policy file (mode 0600) holding `version = 1`, `[defaults]`, `isolation = "in-process"`.
"""
import os, statistics, subprocess, sys, tempfile, time
old, new, repo = sys.argv[1:4]
policy = sys.argv[4] if len(sys.argv) > 4 else None
tmp = tempfile.mkdtemp()
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
def cmd(binary, tag):
    c = [binary, "run", "--audit-log", os.path.join(tmp, tag, "audit.jsonl")]
    if policy:
        c += ["--policy", policy]
    return c + ["examples/plugins/hello.wasm"]
def once(c):
    t = time.perf_counter()
    r = subprocess.run(c, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    d = time.perf_counter() - t
    if r.returncode != 0 or b"Hello" not in r.stdout:
        sys.exit(f"{c}: exit {r.returncode}: {r.stderr.decode()}")
    return d
times = {"old": [], "new": []}
for _ in range(5):
    once(cmd(old, "old")); once(cmd(new, "new"))
for _ in range(30):
    times["old"].append(once(cmd(old, "old")))
    times["new"].append(once(cmd(new, "new")))
for k, v in times.items():
    print(f"{k}: median {statistics.median(v)*1e3:.2f} ms  mean {statistics.mean(v)*1e3:.2f} ms  min {min(v)*1e3:.2f} ms")
print(f"new/old median ratio {statistics.median(times['new'])/statistics.median(times['old']):.3f}x (target <= 1.05)")
