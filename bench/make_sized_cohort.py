#!/usr/bin/python3
"""Writes a cohort of animal files with given sizes for planning benchmarks (`cohortnet submit
--dry-run`): the activity is declared but never written (HDF5 fill), so 40 animals of thousands
of units take a few kB. Not for fitting. usage: make_sized_cohort.py DIR N_ANIMALS N_MIN N_MAX T [REGIONS]"""
import os
import sys

import h5py
import numpy as np

out, n_animals, n_min, n_max, T = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
os.makedirs(out, exist_ok=True)
regions = ["R%d" % i for i in range(int(sys.argv[6]) if len(sys.argv) > 6 else 6)]
rng = np.random.default_rng(0)
sizes = np.linspace(n_min, n_max, n_animals).astype(int)
with open(os.path.join(out, "cohort.ini"), "w") as man:
    man.write("regions = %s\n" % ",".join(regions))
    for a, n in enumerate(sizes):
        aid = "m%02d" % a
        with h5py.File(os.path.join(out, aid + ".h5"), "w") as f:
            f.create_dataset("activity", shape=(n, T), dtype="f8", chunks=(min(n, 64), T))
            f["unit_region"] = (np.arange(n) % len(regions)).astype("i8")
            f["region_names"] = np.array(regions, dtype=h5py.string_dtype())
            f.attrs.update(format="cohortnet-animal", format_version=1, animal_id=aid, sample_interval=0.033,
                           provenance="bench/make_sized_cohort.py: sizes only, activity never written")
        man.write("animal = %s.h5\n" % aid)
print("wrote %d animals, N %d..%d, T %d to %s" % (n_animals, n_min, n_max, T, out))
