#!/usr/bin/env python3
"""Runs the conformance suite against every mutant of tests/tools/pydisp.py.

Each mutant of the independent Python dispatcher is one departure from SPEC.md; its
description starts with the clauses it breaks ("S13: ...", "S2/S12: ..."). For each
mutant this starts `pydisp.py --mutant NAME` on a free port and runs

    hookjar conformance --server URL --api-key k --time-scale 3600 --only CLAUSE ...

with the clauses of its description (and S7.every-request, which holds every request
of the run to S7 and S11), and counts it caught when the run fails. The
unmutated dispatcher runs the whole suite first and must pass. A mutant that is not
caught fails this script, unless it is in KNOWN (a departure the suite accepts on
purpose, or one the time scale cannot resolve), which says why.

    cargo build --release -p hookjar
    python3 tests/tools/pymutants.py [--jobs 2] [--only NAME ...] [--hookjar PATH]

Standard library only; loopback only. About 15 minutes for every mutant with two
jobs on a 2-core machine (the S14/S15 ones run the retry life-cycle at x3600).
"""

import argparse
import concurrent.futures
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYDISP = os.path.join(HERE, "pydisp.py")

# Mutants the suite lets through, and why.
KNOWN = {
    "password-clear": "S3: Skilljar itself returns the password in clear; the suite accepts both",
    "headers-lowercased": "S9: header names are case-insensitive in HTTP and SPEC fixes no case; "
    "the mock receiver (hyper) does not keep the case it was sent",
    "extra-header": "X5: X5.no-extra-headers warns about headers Skilljar does not send but "
    "never fails: a correct dispatcher on another HTTP stack sends its client's own",
}

CLAUSES = re.compile(r"^((?:S|X)\d+b?(?:/(?:S|X)\d+b?)*)")


def mutants():
    """{name: description} from pydisp.py --list-mutants."""
    out = subprocess.run(
        [sys.executable, PYDISP, "--list-mutants"], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        name, _, desc = line.strip().partition(" ")
        if name:
            found[name] = desc.strip(" -:")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port, proc):
    for _ in range(100):
        if proc.poll() is not None:
            return False
        try:
            req = urllib.request.Request("http://127.0.0.1:%d/v1/ping" % port)
            req.add_header("Authorization", "Basic azo=")  # "k:"
            urllib.request.urlopen(req, timeout=1).read()
            return True
        except urllib.error.HTTPError:
            return True  # it answers (a mutant may refuse the ping)
        except Exception:
            time.sleep(0.1)
    return False


def run(hookjar, mutant, only):
    """(exit code, the failing case ids, the last line) of one suite run."""
    port = free_port()
    args = [sys.executable, PYDISP, "--port", str(port), "--api-key", "k", "--time-scale", "3600"]
    if mutant:
        args += ["--mutant", mutant]
    disp = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_up(port, disp):
            return 2, [], "the Python dispatcher did not start"
        cmd = [hookjar, "conformance", "--server", "http://127.0.0.1:%d" % port,
               "--api-key", "k", "--time-scale", "3600"]
        for c in only:
            cmd += ["--only", c]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                             env=dict(os.environ, NO_COLOR="1"))
        lines = res.stdout.strip().splitlines()
        failed = [l.split()[1] for l in lines if l.startswith("FAIL ")]
        return res.returncode, failed, lines[-1] if lines else res.stderr.strip()[-200:]
    finally:
        disp.kill()
        disp.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hookjar", default=os.path.join(ROOT, "target", "release", "hookjar"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", action="extend", nargs="+", default=[], help="run these mutants only (--only A B or --only A --only B)")
    a = ap.parse_args()
    if not os.path.exists(a.hookjar):
        sys.exit("no %s: build it first (cargo build --release -p hookjar)" % a.hookjar)

    rc, failed, last = run(a.hookjar, None, [])
    print("unmutated: exit %d, %s" % (rc, last), flush=True)
    if rc != 0:
        sys.exit("the unmutated Python dispatcher must pass (failed: %s)" % ", ".join(failed))

    table = mutants()
    names = a.only or sorted(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit("no such mutant: %s" % ", ".join(unknown))

    def one(name):
        m = CLAUSES.match(table[name])
        # S7.every-request holds every request of the run to S7 and S11.
        only = (m.group(1).split("/") if m else []) + ["S7.every-request"]
        return name, only, run(a.hookjar, name, only)

    survivors = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        for name, only, (rc, failed, last) in pool.map(one, names):
            if rc == 1:
                verdict = "caught by " + ", ".join(failed)
            elif name in KNOWN:
                verdict = "survives (known: %s)" % KNOWN[name]
            else:
                verdict = "SURVIVES (exit %d: %s)" % (rc, last)
                survivors.append(name)
            print("%-36s --only %-12s %s" % (name, ",".join(only) or "-", verdict), flush=True)
    print("%d mutants, %d caught, %d known, %d unexpected survivors"
          % (len(names), len(names) - len(survivors) - sum(n in KNOWN for n in names),
             sum(n in KNOWN for n in names), len(survivors)))
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
