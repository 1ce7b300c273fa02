#!/usr/bin/python3
"""Fitted vs true region-pair currents of a simulated cohort, from the files alone (no refit).
usage: compare_currents.py RESULTS COHORT
For every animal: correlation over time of the fitted and true region-mean current of every
inter-region pair (/currents/mean vs truth /current_mean), magnitude ratio (RMS over time of
/currents/rms vs truth /current_rms), and the AUC of coupled vs uncoupled pairs (score: fitted RMS
current, label: truth /pair_coupled). Prints per animal and pooled medians."""
import glob
import os
import sys

import h5py
import numpy as np


def auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


results, cohort = sys.argv[1], sys.argv[2]
all_r, all_ratio, all_s, all_l = [], [], [], []
print("animal   pairs  coupled  median_r(coupled)  median_ratio(coupled)  AUC")
for fit_path in sorted(glob.glob(os.path.join(results, "fits", "*.h5"))):
    aid = os.path.splitext(os.path.basename(fit_path))[0]
    truth_path = os.path.join(cohort, "truth", aid + ".h5")
    if not os.path.exists(truth_path):
        continue
    with h5py.File(fit_path, "r") as f, h5py.File(truth_path, "r") as t:
        fm, fr = f["currents/mean"][()], f["currents/rms"][()]
        tm, tr = t["current_mean"][()], t["current_rms"][()]
        coupled = t["pair_coupled"][()]
    M = fm.shape[0]
    rs, ratios, scores, labels = [], [], [], []
    for q in range(M):
        for s in range(M):
            if q == s:
                continue
            score = np.sqrt(np.mean(fr[q, s] ** 2))
            scores.append(score)
            labels.append(int(coupled[q, s]))
            if coupled[q, s]:
                truth_rms = np.sqrt(np.mean(tr[q, s] ** 2))
                ratios.append(score / truth_rms if truth_rms > 0 else np.nan)
                if np.std(tm[q, s]) > 0 and np.std(fm[q, s]) > 0:
                    rs.append(np.corrcoef(fm[q, s], tm[q, s])[0, 1])
    scores, labels = np.array(scores), np.array(labels)
    a = auc(scores, labels)
    print("%-8s %5d  %7d  %17.3f  %21.2f  %.3f" % (aid, len(labels), labels.sum(), np.nanmedian(rs) if rs else np.nan,
                                                   np.nanmedian(ratios) if ratios else np.nan, a))
    all_r += rs
    all_ratio += ratios
    all_s += list(scores / max(np.median(scores), 1e-300))  # per-animal scale, so animals pool
    all_l += list(labels)
print("pooled: median r %.3f over %d coupled pairs, median ratio %.2f, AUC %.3f (scores scaled per animal)"
      % (np.nanmedian(all_r), len(all_r), np.nanmedian(all_ratio), auc(np.array(all_s), np.array(all_l))))
