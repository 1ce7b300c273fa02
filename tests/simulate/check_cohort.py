#!/usr/bin/python3
"""Reads a simulated cohort back with h5py, as docs/format.md documents it, and checks it.
usage: check_cohort.py DIR N_ANIMALS | --compare DIR1 DIR2 | --three DIR LINK_STRENGTH"""
import os
import sys

import h5py
import numpy as np


def text(v):
    """String attributes are fixed-length UTF-8: h5py returns them as bytes."""
    return v.decode() if isinstance(v, bytes) else str(v)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_cohort(d, n_animals):
    manifest = open(os.path.join(d, "cohort.ini")).read().splitlines()
    animals = [l.split("=", 1)[1].strip() for l in manifest if l.startswith("animal")]
    regions = [l.split("=", 1)[1].strip() for l in manifest if l.startswith("regions")][0].split(",")
    if len(animals) != n_animals:
        fail(f"manifest lists {len(animals)} animals, expected {n_animals}")
    with h5py.File(os.path.join(d, "truth", "cohort.h5"), "r") as c:
        K = c["modes"].shape[0]
        if c["modes"].shape != (K, len(regions), len(regions)):
            fail("truth/cohort.h5 /modes shape")
        if c["mode_present"].shape != (n_animals, K):
            fail("truth/cohort.h5 /mode_present shape")
        if list(c["region_names"].asstr()[()]) != regions:
            fail("cohort region names differ from the manifest")
        ids = list(c["animal_ids"].asstr()[()])
        if np.any(c["modes"][()] < 0):
            fail("negative mode weights")
        for key in ("seed", "preset", "config"):
            if key not in c.attrs:
                fail(f"truth/cohort.h5 lacks attribute {key}")
    n_short = 0
    for name, aid in zip(animals, ids):
        with h5py.File(os.path.join(d, name), "r") as f:
            A = f["activity"][()]
            N, T = A.shape
            if text(f.attrs["format"]) != "cohortnet-animal" or text(f.attrs["animal_id"]) != aid:
                fail(f"{name}: format/animal_id attributes")
            for key in ("seed", "preset", "config", "sample_interval"):
                if key not in f.attrs:
                    fail(f"{name} lacks attribute {key}")
            if f.attrs["seed"] != 1 or text(f.attrs["preset"]) != "cohort":
                fail(f"{name}: seed/preset attributes")
            rn = list(f["region_names"].asstr()[()])
            n_short += len(rn) < len(regions)
            lab = f["unit_region"][()]
            if lab.shape != (N,) or set(lab) != set(range(len(rn))):
                fail(f"{name}: unit_region")
            if f["behaviour"].shape != (T,) or f["inputs"].shape[1] != T:
                fail(f"{name}: behaviour/inputs shapes")
            if not np.all(np.isfinite(A)) or A.std() < 0.1:
                fail(f"{name}: activity not finite or nearly constant")
        with h5py.File(os.path.join(d, "truth", name), "r") as t:
            M = len(rn)
            for key in ("current_mean", "current_rms", "current_exc_mean", "current_exc_rms",
                        "current_inh_mean", "current_inh_rms", "gains"):
                if t[key].shape != (M, M, T):
                    fail(f"truth/{name} /{key} shape {t[key].shape}")
            if t["J"].shape != (N, N) or t["rates"].shape != (N, T):
                fail(f"truth/{name}: J/rates shapes")
            if not np.array_equal(t["rates"][()], A):
                fail(f"truth/{name}: rates differ from the activity")
            if t["mode_activations"].shape != (K, T) or t["states"].shape != (T,):
                fail(f"truth/{name}: mode_activations/states shapes")
            if not np.array_equal(t["states"][()], f_beh(d, name)):
                fail(f"truth/{name}: states differ from /behaviour")
            # One current recomputed with numpy: C_QS = gains * J[Q,S] r[S], RMS over Q's units.
            J, R, G = t["J"][()], t["rates"][()], t["gains"][()]
            q, s = 0, 1
            iq, js = np.where(lab == q)[0], np.where(lab == s)[0]
            C = G[q, s][None, :] * (J[np.ix_(iq, js)] @ R[js])
            if not np.allclose(np.sqrt((C ** 2).mean(0)), t["current_rms"][q, s], rtol=1e-10, atol=1e-12):
                fail(f"truth/{name}: current_rms[0,1] does not follow from J, gains and rates")
            if list(t["region_names"].asstr()[()]) != rn:
                fail(f"truth/{name}: region names")
    if n_short == 0:
        fail("no animal misses a region (default --missing-fraction 0.25)")
    print(f"{d}: {n_animals} animals, {len(regions)} regions, {K} modes, {n_short} animals missing a region: OK")


def f_beh(d, name):
    with h5py.File(os.path.join(d, name), "r") as f:
        return f["behaviour"][()]


def compare(d1, d2):
    files = []
    for root, _, names in os.walk(d1):
        files += [os.path.relpath(os.path.join(root, n), d1) for n in names]
    if len(files) < 5:
        fail(f"{d1}: too few files")
    for rel in files:
        p1, p2 = os.path.join(d1, rel), os.path.join(d2, rel)
        if not os.path.exists(p2):
            fail(f"{p2} missing")
        if not rel.endswith(".h5"):
            if open(p1).read() != open(p2).read():
                fail(f"{rel} differs")
            continue
        with h5py.File(p1, "r") as a, h5py.File(p2, "r") as b:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    x, y = obj[()], b[name][()]
                    if x.shape != y.shape or not np.array_equal(x, y):
                        fail(f"{rel}/{name} differs between rank counts")
            a.visititems(visit)
            # The recorded config names the output folder, which differs on purpose.
            def attrs(f):
                return {k: "\n".join(l for l in text(f.attrs[k]).split("\n") if not l.startswith("out = "))
                        for k in f.attrs}
            if attrs(a) != attrs(b):
                fail(f"{rel}: attributes differ")
    print(f"{d1} == {d2}: {len(files)} files identical")


def three(d, strength):
    with h5py.File(os.path.join(d, "a00.h5"), "r") as f, h5py.File(os.path.join(d, "truth", "a00.h5"), "r") as t:
        if list(f["region_names"].asstr()[()]) != ["A", "B", "C"]:
            fail("three-region names")
        if list(f["trial_starts"][()]) != [0, 200] or f["activity"].shape != (90, 400):
            fail("three-region trials/shape")
        J, lab = t["J"][()], f["unit_region"][()]
        # One-to-one links (the reference's): per ordered region pair round(0.05 * 30) = 2 target
        # units, each fed by the source unit of the same index, weight +strength.
        n = 30
        for q in range(3):
            for s in range(3):
                if q == s:
                    continue
                block = J[q * n:(q + 1) * n, s * n:(s + 1) * n]
                rows, cols = np.nonzero(block)
                if len(rows) != 2 or not np.array_equal(rows, cols) or not np.allclose(block[rows, cols], strength):
                    fail(f"inter-region links {q}<-{s}: {list(zip(rows, cols))}, strengths {np.unique(block[rows, cols])}")
        if text(f.attrs["preset"]) != "three-region":
            fail("preset attribute")
    print(f"{d}: three-region OK")


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--three":
        three(sys.argv[2], float(sys.argv[3]))
    else:
        check_cohort(sys.argv[1], int(sys.argv[2]))
