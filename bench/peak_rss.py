"""Run a command; print its wall time and peak resident memory (max RSS of the child), as JSON.

Usage: python bench/peak_rss.py LABEL -- CMD ARGS...
"""
import json
import resource
import subprocess
import sys
import time

label, sep, *cmd = sys.argv[1:]
assert sep == "--", __doc__
t0 = time.perf_counter()
rc = subprocess.run(cmd).returncode
wall = time.perf_counter() - t0
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"label": label, "rc": rc, "seconds": round(wall, 2), "peak_rss_mib": round(peak_kib / 1024, 1)}))
sys.exit(rc)
