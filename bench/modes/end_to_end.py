#!/usr/bin/env python3
"""The whole study (simulate, fit, modes) over seeds, scored by the modes stage's own truth check
(issue #14: "the demo study with other seeds", "on 20 null cohorts <= 1 called conserved").

For every seed, the config (default configs/demo.ini) is copied with every section's
`seed` set to it and every output under WORK/seedS; with --null the cohort is simulated with
`mode-sharing = none` (every animal its own modes, nothing shared: a mode called conserved is a
false positive). Runs `cohortnet run --config` and reads modes.h5: K, the truth check's verdict,
the matched cosines (shared cohorts) and the number of modes called conserved. One line per
seed, then the totals.

  /usr/bin/python3 bench/modes/end_to_end.py --seeds 3-5 --work /tmp/e2e
  /usr/bin/python3 bench/modes/end_to_end.py --null --seeds 1-20 --work /tmp/e2e-null
  /usr/bin/python3 bench/modes/end_to_end.py --seeds 3 --set simulate.individual-mode=true --work /tmp/e2e-ind

Needs build/bin/cohortnet and h5py. A cohort of configs/demo.ini takes ~5 min at 2 ranks.
"""
import argparse
import configparser
import os
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from truth_study import seeds_of  # noqa: E402


def config_for(base, seed, folder, null, sets=()):
    c = configparser.ConfigParser(interpolation=None)
    c.optionxform = str
    c.read(base)
    old = c["simulate"]["out"].rsplit("/", 1)[0]  # the study's folder, e.g. results/demo
    for sec in c.sections():
        for key, val in list(c[sec].items()):
            if key == "seed":
                c[sec][key] = str(seed)
            elif val.startswith(old):
                c[sec][key] = folder + val[len(old):]
    if null:
        c["simulate"]["mode-sharing"] = "none"
    for item in sets:  # --set section.key=value
        key, _, val = item.partition("=")
        sec, _, opt = key.partition(".")
        if not c.has_section(sec):
            c.add_section(sec)
        c[sec][opt] = val
    if c.has_section("report"):
        c.remove_section("report")  # not scored here
    path = os.path.join(folder, "study.ini")
    with open(path, "w") as f:
        c.write(f)
    return path, c["modes"]["out"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.ini"))
    ap.add_argument("--seeds", default="3-5")
    ap.add_argument("--null", action="store_true", help="null cohorts (simulate mode-sharing = none)")
    ap.add_argument("--work", default="/tmp/end-to-end")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="change the study file, e.g. --set simulate.individual-mode=true")
    a = ap.parse_args()
    exe = os.path.join(ROOT, "build", "bin", "cohortnet")
    os.makedirs(a.work, exist_ok=True)
    rows = []
    print("seed rc K truth_check conserved/K unshared_called_conserved mean_cos cosines_of_shared", flush=True)
    for seed in seeds_of(a.seeds):
        folder = os.path.abspath(os.path.join(a.work, "seed%d" % seed))
        os.makedirs(folder, exist_ok=True)
        ini, modes_out = config_for(a.config, seed, folder, a.null, a.set)
        with open(os.path.join(folder, "log.txt"), "w") as log:
            rc = subprocess.run(["mpirun", "--oversubscribe", "-n", str(a.ranks), exe, "run", "--config", ini],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        h5 = os.path.join(modes_out, "modes.h5")
        if not os.path.exists(h5):
            print("%d %d no modes.h5 (see %s/log.txt)" % (seed, rc, folder), flush=True)
            rows.append(None)
            continue
        with h5py.File(h5, "r") as f:
            K = int(f.attrs["K"])
            check = f.attrs.get("truth_check", b"none")
            check = check.decode() if isinstance(check, bytes) else str(check)
            called = int(np.sum(f["mode_test/conserved"][()])) if "mode_test/conserved" in f else -1
            tc = f["truth_check"] if "truth_check" in f else None
            cos = tc["cosine"][()] if tc is not None else np.array([])
            shared = tc["truly_conserved"][()] if tc is not None else np.array([])
            mean = float(tc.attrs["mean_cosine"]) if tc is not None else float("nan")
            found = int(tc.attrs["conserved_found"]) if tc is not None else -1
            false = int(tc.attrs["false_conserved"]) if tc is not None else -1
        rows.append(dict(K=K, check=check, called=called, mean=mean, found=found, n=int(np.sum(shared)), false=false))
        print("%d %d %d %s %d/%d %d %.3f %s" % (seed, rc, K, check, called, K, false, mean,
                                              " ".join("%.2f" % c for c, s in zip(cos, shared) if s)), flush=True)
    done = [r for r in rows if r]
    if not done:
        sys.exit("no seed finished")
    if a.null:
        print("TOTAL null: %d cohorts, %d with any mode called conserved, %d modes called conserved of %d found; "
              "truth check passed %d/%d" % (len(done), sum(r["called"] > 0 for r in done), sum(r["called"] for r in done),
                                            sum(r["K"] for r in done), sum(r["check"] == "pass" for r in done), len(done)))
    else:
        print("TOTAL: %d cohorts, K = true shared %d/%d, >= all-but-one shared conserved %d/%d, mean cosine %.3f "
              "(min %.3f), unshared modes called conserved %d, truth check passed %d/%d" % (
                  len(done), sum(r["K"] == r["n"] for r in done), len(done), sum(r["found"] >= r["n"] - 1 for r in done),
                  len(done), np.mean([r["mean"] for r in done]), np.min([r["mean"] for r in done]),
                  sum(r["false"] for r in done), sum(r["check"] == "pass" for r in done), len(done)))
    print("(rows with no modes.h5: %d)" % (len(rows) - len(done)))


if __name__ == "__main__":
    main()
