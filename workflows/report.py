#!/usr/bin/env python3
"""cohortnet report: a static HTML page (index.html) with PNG figures of a study's results.

Usage: report.py --results DIR [--cohort DIR] [--modes FILE] [--out DIR]

Reads DIR/fits/<animal>.h5, DIR/fits/summary.csv (the fit stage, docs/fit.md), DIR/modes.h5 and
DIR/modes_summary.txt (the modes stage, docs/modes.md) and, when found, the cohort's animal files
and ground truth (COHORT/<id>.h5, COHORT/truth/). Writes OUT/index.html, OUT/*.png and
OUT/summary.json (every number of the summary table, exactly as read from the HDF5 files; NaN as
null). Every figure is optional: a missing or unreadable part is said in the page, never fatal.
Needs h5py, numpy, matplotlib (Agg backend; no display, no network). docs/report.md.
"""
import argparse
import csv
import datetime
import html
import itertools
import json
import math
import os
import sys
import traceback

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import h5py  # noqa: E402

DPI = 80
PROBLEMS = object()  # placeholder in the page for the list of problems
UNITS_PER_REGION = 3  # traces shown per region
problems = []  # (where, message): listed in the page


def note(where, msg):
    problems.append((where, msg))
    print("report: warning: %s: %s" % (where, msg), file=sys.stderr)


def text(v):
    """An HDF5 string (attribute or dataset element) as str."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return text(v[()])
    return str(v)


def strings(ds):
    return [text(x) for x in ds[()]]


def attr(f, name, default=None):
    if name not in f.attrs:
        return default
    v = f.attrs[name]
    if isinstance(v, (bytes, str)):
        return text(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def num(x):
    """A float for JSON: NaN/Inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fmt(x, spec="%.4f"):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return spec % x


def esc(s):
    return html.escape(str(s), quote=True)


def cell(value, shown, key=None):
    """A table cell; data-key/data-value carry the exact number (repr) for checks."""
    if key is None:
        return "<td>%s</td>" % esc(shown)
    v = "nan" if value is None else repr(value)
    return '<td data-key="%s" data-value="%s">%s</td>' % (esc(key), esc(v), esc(shown))


# ---------------------------------------------------------------------------------------------
# Reading the study


def read_fit_summary(fits_dir):
    """fits/summary.csv rows (animal_id, n_units, n_samples, group, status, runs_done, final_pvar,
    seconds, message) in cohort order; None if absent."""
    path = os.path.join(fits_dir, "summary.csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def find_cohort(args, fit_files, summary_txt):
    """The cohort folder: --cohort, else the folder of the fits' `source` attribute (absolute or
    relative to the current directory), else the fit summary's header line."""
    if args.cohort:
        return args.cohort
    for path in fit_files:
        try:
            with h5py.File(path, "r") as f:
                src = attr(f, "source")
            if src and os.path.exists(src):
                return os.path.dirname(src) or "."
        except OSError:
            pass
    if summary_txt and os.path.exists(summary_txt):
        with open(summary_txt) as fh:
            first = fh.readline()
        prefix = "# cohortnet fit summary: "
        if first.startswith(prefix) and " -> " in first:
            d = first[len(prefix):].split(" -> ")[0].strip()
            if os.path.isdir(d):
                return d
    return None


def read_statuses(fits_dir):
    """fits/<animal>.status.json (one per animal the fit attempted; docs/fit.md), by animal id.
    They hold the failures of per-animal runs (Slurm array tasks) that no cohort summary lists."""
    out = {}
    if not os.path.isdir(fits_dir):
        return out
    for name in sorted(os.listdir(fits_dir)):
        if name.endswith(".status.json"):
            try:
                with open(os.path.join(fits_dir, name)) as fh:
                    st = json.load(fh)
                out[st["animal_id"]] = st
            except Exception as e:
                note("fits/" + name, "cannot be read: %s" % e)
    return out


def quality_warnings(animals, poor, m):
    """Sentences for the top of the page: fits that do not beat their baselines, and whether the
    cohort's modes were computed from them (modes --include-poor) or without them."""
    out = []
    if not poor:
        return out
    ids = [a["id"] for a in poor]
    used = set(m["animal_ids"]) if m is not None else set()
    in_modes = [i for i in ids if i in used]
    desc = ", ".join("%s (held-out pVar %s, best baseline %s)" % (a["id"], fmt(a["pvar_heldout"]), fmt(a["baseline_best"]))
                     for a in poor)
    out.append("%d of %d fits do not beat their baselines on held-out data (status poor): %s." % (len(poor), len(animals), desc))
    if in_modes:
        out.append("WARNING: the cohort's currents and modes include fits that do not beat their baselines (%s; "
                   "modes ran with --include-poor): read the modes with that in mind." % ", ".join(in_modes))
    elif m is not None:
        out.append("They are left out of the modes (modes.h5 lists them under left_out).")
    return out


def load_animals(results, cohort):
    """One record per animal: its status file (else its fit summary row) + the numbers of its fit file."""
    fits_dir = os.path.join(results, "fits")
    rows = read_fit_summary(fits_dir)
    statuses = read_statuses(fits_dir)
    if statuses:  # the status files are the record; a summary.csv may be an older run's
        known = {r["animal_id"]: r for r in rows or []}
        rows = []
        for aid, st in statuses.items():
            r = dict(known.get(aid, {}))
            r.update(animal_id=aid, status=st["status"], message=st.get("reason", ""))
            r.setdefault("n_units", 0)
            r.setdefault("n_samples", 0)
            r.setdefault("runs_done", 0)
            rows.append(r)
    files = {}
    if os.path.isdir(fits_dir):
        for name in sorted(os.listdir(fits_dir)):
            if name.endswith(".h5"):
                files[name[:-3]] = os.path.join(fits_dir, name)
    animals = []
    seen = set()
    for r in rows or []:
        a = {"id": r["animal_id"], "status": r["status"], "reason": r.get("message", "") or "",
             "n_units": int(r["n_units"] or 0), "n_samples": int(r["n_samples"] or 0),
             "runs_done": int(r["runs_done"] or 0), "fit_file": None, "fingerprint": None}
        animals.append(a)
        seen.add(a["id"])
    if rows is None and os.path.isdir(fits_dir):
        note("fits/summary.csv", "not found in %s: animals are the fit files present, failures unknown" % fits_dir)
    for aid in files:
        if aid not in seen:
            status, reason = ("ok", "") if not statuses else ("unknown", "fit file without a status file")
            animals.append({"id": aid, "status": status, "reason": reason, "n_units": None, "n_samples": None,
                            "runs_done": None, "fit_file": None, "fingerprint": None})
    for a in animals:
        path = files.get(a["id"])
        a.update(final_pvar=None, final_chi2=None, regions=[], runs_train=None, runs_free=None,
                 pvar_train=None, pvar_heldout=None, pvar_noise_free=None, baseline_best=None,
                 baseline_best_name=None, status_reason=None)
        if a["status"] in ("ok", "ok (kept from before)") and path is None:
            note("animal " + a["id"], "summary says %s but fits/%s.h5 is missing" % (a["status"], a["id"]))
            a["status"] += " (fit file missing)"
        # A poor fit (held-out pVar below its best baseline) is read too: its numbers are the evidence.
        if path is None or not (a["status"].startswith("ok") or a["status"] == "poor"):
            continue
        try:
            with h5py.File(path, "r") as f:
                if attr(f, "format") != "cohortnet-fit":
                    note("fits/%s.h5" % a["id"], "not a cohortnet-fit file (attribute format)")
                    continue
                a["fit_file"] = path
                a["final_pvar"] = float(attr(f, "final_pvar"))
                chi2 = f["chi2"][()]
                a["final_chi2"] = float(chi2[-1]) if chi2.size else None
                a["n_units"] = int(f["unit_region"].shape[0])
                a["n_samples"] = int(f["rates"].shape[1])
                a["runs_done"] = int(f["pvar"].shape[0])
                a["regions"] = strings(f["region_names"])
                a["runs_train"] = attr(f, "runs_train")
                a["runs_free"] = attr(f, "runs_free")
                a["sample_interval"] = attr(f, "sample_interval")
                a["source"] = attr(f, "source")
                a["fingerprint"] = attr(f, "fingerprint")
                # Held out and in sample both over the non-reset samples (what the status compares).
                for k, name in (("pvar_train", "pvar_train_nonreset"), ("pvar_heldout", "pvar_heldout_nonreset"),
                                ("pvar_noise_free", "pvar_noise_free"), ("baseline_best", "baseline_best")):
                    v = attr(f, name)
                    a[k] = float(v) if v is not None else None
                a["baseline_best_name"] = attr(f, "baseline_best_name")
                a["status_reason"] = attr(f, "status_reason")
        except Exception as e:  # unreadable file: say so, go on
            note("fits/%s.h5" % a["id"], "cannot be read: %s" % e)
            a["fit_file"] = None
    for a in animals:
        a["animal_file"] = None
        a["truth_file"] = None
        if cohort:
            p = os.path.join(cohort, a["id"] + ".h5")
            if os.path.exists(p):
                a["animal_file"] = p
            t = os.path.join(cohort, "truth", a["id"] + ".h5")
            if os.path.exists(t):
                a["truth_file"] = t
        if a["animal_file"] is None and a.get("source") and os.path.exists(a["source"]):
            a["animal_file"] = a["source"]
        try:
            gains_of(a)
        except Exception as e:  # unreadable gains: say so, go on
            note("fits/%s.h5" % a["id"], "gains cannot be read: %s" % e)
            a["gains"] = None
    return animals


def gains_of(a):
    """The fit's gated pathways (fit --gains): targets whose gains were kept, and where the simulator's
    truth exists, r = correlation over time of the fitted and true gains, median over the coupled
    pairs of kept targets (as cohortnet validate scores it). Sets a["gains"] = None for a fixed-J fit."""
    a["gains"] = None
    if a["fit_file"] is None:
        return
    with h5py.File(a["fit_file"], "r") as f:
        if "gains_model/kept" not in f or "gains" not in f:
            return
        kept = np.asarray(f["gains_model/kept"][()]).astype(bool)
        names = strings(f["region_names"])
        g = {"kept": int(kept.sum()), "targets": int(kept.size), "kept_regions": [n for n, k in zip(names, kept) if k],
             "r": None, "pairs": 0}
        a["gains"] = g
        if not kept.any() or not a["truth_file"]:
            return
        G = f["gains"][()]
    with h5py.File(a["truth_file"], "r") as t:
        if "gains" not in t or "pair_coupled" not in t:
            return
        tnames = strings(t["region_names"])
        TG, coupled = t["gains"][()], t["pair_coupled"][()]
    idx = [tnames.index(n) if n in tnames else -1 for n in names]
    rs, best = [], []
    for q in range(len(names)):
        for s_ in range(len(names)):
            iq, js = idx[q], idx[s_]
            if q == s_ or not kept[q] or iq < 0 or js < 0 or not coupled[iq, js]:
                continue
            x, y = G[q, s_], TG[iq, js]
            if np.std(x) > 0 and np.std(y) > 0:
                r = float(np.corrcoef(x, y)[0, 1])
                rs.append(r)
                best.append((np.std(y), q, s_, iq, js))
    if rs:
        g["r"], g["pairs"] = float(np.median(rs)), len(rs)
        best.sort(reverse=True)  # the most modulated true pathways, for the figure
        g["show"] = [(names[q], names[s_], G[q, s_], TG[iq, js]) for _, q, s_, iq, js in best[:4]]


def gains_cells(a):
    g = a.get("gains")
    if not g:
        return cell(None, "") + cell(None, "")
    return cell(g["kept"], "%d of %d" % (g["kept"], g["targets"]), "gains_kept:" + a["id"]) + \
        cell(g["r"], fmt(g["r"], "%.3f"), "gains_r:" + a["id"])


def fig_gains(a):
    fig, axes = plt.subplots(len(a["gains"]["show"]), 1, figsize=(10, 1.6 * len(a["gains"]["show"])), sharex=True,
                             squeeze=False)
    dt = a.get("sample_interval") or 1.0
    for axis, (qn, sn, fitted, true) in zip(axes[:, 0], a["gains"]["show"]):
        t = np.arange(fitted.size) * dt
        axis.plot(t, true / max(np.sqrt(np.mean(true ** 2)), 1e-12), color="k", lw=1, label="true")
        axis.plot(t, fitted / max(np.sqrt(np.mean(fitted ** 2)), 1e-12), color="tab:red", lw=1, label="fitted")
        axis.set_ylabel("%s<-%s" % (qn, sn), fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    return fig


def load_modes(path):
    if not os.path.exists(path):
        return None
    m = {"path": path}
    with h5py.File(path, "r") as f:
        if attr(f, "format") != "cohortnet-modes":
            raise ValueError("%s: attribute format is not cohortnet-modes" % path)
        m["K"] = int(attr(f, "K"))
        m["regions"] = strings(f["region_names"])
        m["animal_ids"] = strings(f["animal_ids"])
        m["modes"] = f["modes"][()]
        m["self_pairs"] = int(attr(f, "self_pairs", 0))
        m["summary"] = attr(f, "summary", "")
        m["source"] = attr(f, "source", "")
        m["stability"] = attr(f["W"], "stability") if "W" in f else None
        m["regions_present"] = f["regions_present"][()] if "regions_present" in f else None
        m["activations"] = {a: f["activations"][a][()] for a in m["animal_ids"]
                            if "activations" in f and a in f["activations"]}
        if "select_k" in f:
            g = f["select_k"]
            m["select_k"] = {k: g[k][()] for k in g}
            m["select_k"].update(k_chosen=int(attr(g, "k_chosen")), rule=attr(g, "rule", ""),
                                 reason=attr(g, "reason", ""), average=attr(g, "cv_average", "mean"))
        if "conservation" in f:
            g = f["conservation"]
            m["conservation"] = {k: g[k][()] for k in ("index", "r2_shared", "r2_own", "r2_null") if k in g}
        if "mode_test" in f:
            g = f["mode_test"]
            m["mode_test"] = {k: g[k][()] for k in g}
            m["mode_test"].update(alpha=attr(g, "alpha"), permutations=attr(g, "permutations"),
                                  statistic_name=attr(g, "statistic", ""), definition=attr(g, "definition", ""),
                                  min_similarity=attr(g, "min_similarity"))
        if "behaviour" in f:
            g = f["behaviour"]
            m["behaviour"] = {"state_names": strings(g["state_names"]), "agreement": g["agreement"][()]}
        m["config"] = attr(f, "config", "")
        m["animal_files"] = strings(f["animal_files"]) if "animal_files" in f else []
        m["animal_fingerprints"] = strings(f["animal_fingerprints"]) if "animal_fingerprints" in f else []
        m["truth_check"] = None
        if "truth_check" in f:  # modes on a simulated cohort, checked against its truth by the modes stage
            g = f["truth_check"]
            m["truth_check"] = {"pass": bool(attr(g, "pass")), "verdict": attr(g, "verdict", ""),
                                "file": attr(g, "file", ""), "k_true": int(attr(g, "k_true")),
                                "k_found": int(attr(g, "k_found")), "mean_cosine": float(attr(g, "mean_cosine")),
                                "min_cosine": float(attr(g, "min_cosine")),
                                "conserved_found": int(attr(g, "conserved_found")),
                                "n_conserved": int(attr(g, "n_conserved")),
                                "false_conserved": int(attr(g, "false_conserved")),
                                "cosine": [float(x) for x in g["cosine"][()]]}
        m["left_out"] = []
        if "left_out" in f:
            m["left_out"] = list(zip(strings(f["left_out/animal_ids"]), strings(f["left_out/reasons"])))
    m["mtime"] = os.path.getmtime(path)
    return m


def stale_inputs(m, animals):
    """Why modes.h5 may not describe today's fits: a fit it used that changed, vanished or is newer
    than it; an animal fitted ok that it neither used nor left out."""
    out = []
    by_id = {a["id"]: a for a in animals}
    for i, path in enumerate(m["animal_files"]):
        aid = m["animal_ids"][i] if i < len(m["animal_ids"]) else os.path.basename(path)[:-3]
        if not os.path.exists(path):
            out.append("%s: fit file %s used by the modes no longer exists" % (aid, path))
            continue
        if os.path.getmtime(path) > m["mtime"]:
            out.append("%s: fit file %s is newer than %s (refitted after the modes; rerun modes)" % (aid, path, m["path"]))
        if i < len(m["animal_fingerprints"]):
            try:
                with h5py.File(path, "r") as f:
                    fp = attr(f, "fingerprint")
                if fp != m["animal_fingerprints"][i]:
                    out.append("%s: fit file %s has another fingerprint than the one the modes recorded" % (aid, path))
            except OSError as e:
                out.append("%s: fit file %s cannot be read: %s" % (aid, path, e))
    used = set(m["animal_ids"]) | {a for a, _ in m["left_out"]}
    for a in animals:
        if a["status"] == "ok" and a["id"] not in used:
            out.append("%s: fitted ok but not in the modes (made before it was fitted; rerun modes)" % a["id"])
    return out


def top_pairs(mode, regions, self_pairs, n=3):
    R = len(regions)
    items = [(mode[q, s], q, s) for q in range(R) for s in range(R) if self_pairs or q != s]
    items.sort(key=lambda t: -t[0])
    return ["%s<-%s" % (regions[q], regions[s]) for w, q, s in items[:n] if w > 0]


# ---------------------------------------------------------------------------------------------
# Figures


class Figures:
    def __init__(self, out):
        self.out = out
        self.names = []

    def make(self, name, caption, draw):
        """Calls draw() -> matplotlib figure, saves OUT/name.png; returns the HTML for it, or a
        note of the problem."""
        try:
            fig = draw()
            if fig is None:
                return ""
            path = os.path.join(self.out, name + ".png")
            tmp = path + ".partial.png"
            fig.savefig(tmp, dpi=DPI)
            plt.close(fig)
            os.replace(tmp, path)
            self.names.append(name + ".png")
            return ('<figure><img src="%s.png" alt="%s"><figcaption>%s</figcaption></figure>\n'
                    % (esc(name), esc(caption), caption))
        except Exception as e:
            plt.close("all")
            note("figure " + name, "%s: %s" % (type(e).__name__, e))
            traceback.print_exc(file=sys.stderr)
            return '<p class="problem">Figure %s could not be drawn: %s</p>\n' % (esc(name), esc(e))


def state_colours(names):
    cmap = plt.get_cmap("Pastel1")
    return {n: cmap(i % 9) for i, n in enumerate(names)}


def fig_training(a):
    with h5py.File(a["fit_file"], "r") as f:
        pvar, chi2 = f["pvar"][()], f["chi2"][()]
    runs = np.arange(1, len(pvar) + 1)
    ntrain = a["runs_train"] if a["runs_train"] is not None else len(pvar)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3), constrained_layout=True)
    for axis, y, name in ((ax[0], pvar, "pVar"), (ax[1], chi2, "chi2")):
        axis.plot(runs, y, "o-", ms=3, color="tab:blue")
        if ntrain < len(pvar):
            axis.axvspan(ntrain + 0.5, len(pvar) + 0.5, color="0.9", label="free runs (no learning)")
            axis.legend(loc="best", fontsize=8)
        axis.set_xlabel("run")
        axis.set_ylabel(name)
        axis.set_title("%s: %s per run (final %.4g)" % (a["id"], name, y[-1]), fontsize=10)
        if name == "chi2" and np.all(y > 0):
            axis.set_yscale("log")
    return fig


def target_and_rates(a):
    """The fit's target D = activity / target_scale (per region), clipped to +-0.999 as the fit
    does (docs/fit.md), and the model rates; None for D without the animal file."""
    with h5py.File(a["fit_file"], "r") as f:
        rates = f["rates"][()]
        lab = f["unit_region"][()]
        scale = f["target_scale"][()]
        starts = f["trial_starts"][()] if "trial_starts" in f else np.array([0])
    D = None
    if a["animal_file"]:
        with h5py.File(a["animal_file"], "r") as g:
            A = g["activity"][()].astype(float)
        if A.shape == rates.shape:
            D = np.clip(A / scale[lab][:, None], -0.999, 0.999)
        else:
            note("animal " + a["id"], "animal file %s has activity %s, the fit %s" % (a["animal_file"], A.shape, rates.shape))
    return D, rates, lab, starts


def fig_activity(a, D, rates, lab):
    order = np.argsort(lab, kind="stable")
    dt = a.get("sample_interval") or 1.0
    T = rates.shape[1]
    panels = ([("recorded (normalised target)", D)] if D is not None else []) + [("model rates (last run)", rates)]
    fig, ax = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6), constrained_layout=True, squeeze=False)
    bounds = np.cumsum(np.bincount(lab, minlength=len(a["regions"])))
    for axis, (title, X) in zip(ax[0], panels):
        im = axis.imshow(X[order], aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                         extent=(0, T * dt, len(lab) - 0.5, -0.5))
        for b in bounds[:-1]:
            axis.axhline(b - 0.5, color="k", lw=0.8)
        mids = (np.concatenate([[0], bounds[:-1]]) + bounds) / 2 - 0.5
        axis.set_yticks(mids)
        axis.set_yticklabels(a["regions"])
        axis.set_xlabel("time (s)")
        axis.set_title("%s: %s" % (a["id"], title), fontsize=10)
    fig.colorbar(im, ax=ax[0, -1], shrink=0.8)
    return fig


def fig_traces(a, D, rates, lab, starts):
    M = len(a["regions"])
    dt = a.get("sample_interval") or 1.0
    t = np.arange(rates.shape[1]) * dt
    fig, ax = plt.subplots(M, UNITS_PER_REGION, figsize=(12, 1.7 * M + 0.6), sharex=True, squeeze=False,
                           constrained_layout=True)
    for q in range(M):
        units = np.where(lab == q)[0]
        pick = units[np.unique(np.linspace(0, len(units) - 1, UNITS_PER_REGION).round().astype(int))]
        for c in range(UNITS_PER_REGION):
            axis = ax[q, c]
            if c >= len(pick):
                axis.axis("off")
                continue
            i = pick[c]
            if D is not None:
                axis.plot(t, D[i], color="k", lw=1.2, label="recorded")
            axis.plot(t, rates[i], color="tab:red", lw=1, label="model")
            for s in starts[1:]:
                axis.axvline(s * dt, color="0.6", ls=":", lw=0.8)
            axis.set_title("%s unit %d" % (a["regions"][q], i), fontsize=9)
            if q == 0 and c == 0:
                axis.legend(fontsize=7, loc="upper right")
    for c in range(UNITS_PER_REGION):
        ax[-1, c].set_xlabel("time (s)")
    return fig


def fig_currents(a):
    with h5py.File(a["fit_file"], "r") as f:
        g = f["currents"]
        rms, mean = g["rms"][()], g["mean"][()]
        names = strings(g["region_names"])
    M = len(names)
    dt = a.get("sample_interval") or 1.0
    t = np.arange(rms.shape[2]) * dt
    fig, ax = plt.subplots(M, M, figsize=(3.2 * M + 0.8, 2.0 * M + 0.8), sharex=True, squeeze=False,
                           constrained_layout=True)
    for q in range(M):
        for s in range(M):
            axis = ax[q, s]
            if q == s:
                axis.set_facecolor("0.95")
            axis.plot(t, rms[q, s], color="k", lw=1, label="rms")
            axis.plot(t, mean[q, s], color="tab:blue", lw=0.8, label="mean")
            axis.axhline(0, color="0.7", lw=0.5)
            axis.set_title("%s <- %s" % (names[q], names[s]), fontsize=9)
            if s == 0:
                axis.set_ylabel("into %s" % names[q])
            if q == M - 1:
                axis.set_xlabel("time (s)   from %s" % names[s])
    ax[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle("%s: current from source region (column) into target region (row)" % a["id"], fontsize=10)
    return fig


def mode_heatmap(axis, mode, regions, self_pairs, vmax, title):
    R = len(regions)
    X = np.array(mode, dtype=float)
    if not self_pairs:
        X = X.copy()
        np.fill_diagonal(X, np.nan)
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("0.85")
    im = axis.imshow(X, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    axis.set_xticks(range(R))
    axis.set_xticklabels(regions, rotation=90 if R > 6 else 0, fontsize=8)
    axis.set_yticks(range(R))
    axis.set_yticklabels(regions, fontsize=8)
    axis.set_xlabel("source")
    axis.set_ylabel("target")
    axis.set_title(title, fontsize=9)
    if R <= 8:
        for q in range(R):
            for s in range(R):
                if np.isfinite(X[q, s]):
                    axis.text(s, q, "%.2f" % X[q, s], ha="center", va="center", fontsize=7,
                              color="w" if X[q, s] < 0.6 * vmax else "k")
    return im


def fig_modes(m):
    K, regions = m["K"], m["regions"]
    cols = min(K, 4)
    rows = (K + cols - 1) // cols
    fig, ax = plt.subplots(rows, cols, figsize=(3.6 * cols + 0.6, 3.4 * rows), squeeze=False, constrained_layout=True)
    vmax = float(np.nanmax(m["modes"])) if m["modes"].size else 1.0
    mt = m.get("mode_test")
    for k in range(rows * cols):
        axis = ax[k // cols, k % cols]
        if k >= K:
            axis.axis("off")
            continue
        title = "mode %d" % k
        if mt is not None:
            title += "\n%s, p = %s (corrected %s)" % ("conserved" if mt["conserved"][k] else "not conserved",
                                                       fmt(mt["p_value"][k], "%.3g"), fmt(mt["p_corrected"][k], "%.3g"))
        im = mode_heatmap(axis, m["modes"][k], regions, m["self_pairs"], vmax, title)
    fig.colorbar(im, ax=ax, shrink=0.7, label="weight (columns of W have unit norm)")
    return fig


def behaviour_of(a, T):
    """(states per sample, state names) from the animal file, else the truth's /states; or None."""
    for path, ds, names in ((a["animal_file"], "behaviour", "behaviour_names"), (a["truth_file"], "states", None)):
        if not path:
            continue
        with h5py.File(path, "r") as f:
            if ds in f:
                s = f[ds][()]
                nm = strings(f[names]) if names and names in f else ["state%d" % i for i in range(int(s.max()) + 1)]
                if len(s) == T:
                    return s, nm
    return None


def fig_activations(m, animals):
    ids = m["animal_ids"]
    byid = {a["id"]: a for a in animals}
    K = m["K"]
    fig, ax = plt.subplots(len(ids), 1, figsize=(12, 1.9 * len(ids) + 0.8), squeeze=False, constrained_layout=True)
    colours = plt.get_cmap("tab10")
    all_states = []
    shaded = {}
    for i, aid in enumerate(ids):
        H = m["activations"].get(aid)
        axis = ax[i, 0]
        if H is None:
            axis.text(0.5, 0.5, "no activations for %s" % aid, transform=axis.transAxes, ha="center")
            continue
        a = byid.get(aid, {"animal_file": None, "truth_file": None})
        dt = a.get("sample_interval") or 1.0
        t = np.arange(H.shape[1]) * dt
        beh = None
        try:
            beh = behaviour_of(a, H.shape[1])
        except Exception as e:
            note("animal " + aid, "behaviour labels unreadable: %s" % e)
        if beh is not None:
            s, names = beh
            for n in names:
                if n not in all_states:
                    all_states.append(n)
            sc = state_colours(all_states)
            edges = np.flatnonzero(np.diff(s)) + 1
            b = np.concatenate([[0], edges, [len(s)]])
            for lo, hi in zip(b[:-1], b[1:]):
                n = names[int(s[lo])] if int(s[lo]) < len(names) else str(s[lo])
                axis.axvspan(lo * dt, hi * dt, color=sc[n], lw=0)
                shaded[n] = sc[n]
        for k in range(K):
            axis.plot(t, H[k], color=colours(k % 10), lw=1, label="mode %d" % k)
        axis.set_ylabel(aid)
        axis.set_xlim(t[0], t[-1] if len(t) > 1 else 1)
    ax[-1, 0].set_xlabel("time (s)" if any(byid.get(i, {}).get("sample_interval") for i in ids) else "sample")
    handles, labels = ax[0, 0].get_legend_handles_labels()
    handles += [Patch(color=shaded[n], label=n) for n in all_states if n in shaded]
    ax[0, 0].legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=min(len(handles), 8), fontsize=8,
                    frameon=False)
    return fig


def fig_select_k(m):
    s = m["select_k"]
    k = s["k"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2), constrained_layout=True)
    cv = s["cv_error"]
    for j in range(cv.shape[1]):
        ax[0].plot(k, cv[:, j], ".", color="0.6", label="folds" if j == 0 else None)
    ax[0].errorbar(k, s["cv_error_mean"], yerr=s["cv_error_se"], fmt="o-", color="tab:blue", capsize=3,
                   label="%s over animals +- se" % s["average"])
    ax[0].set_ylabel("held-out error")
    ax[1].plot(k, s["stability"], "o-", color="tab:green")
    ax[1].set_ylabel("stability across starts")
    ax[1].set_ylim(min(0, float(np.nanmin(s["stability"]))) if np.isfinite(s["stability"]).any() else 0, 1.05)
    for axis in ax:
        axis.axvline(s["k_chosen"], color="tab:red", ls="--", label="chosen K = %d" % s["k_chosen"])
        axis.set_xlabel("K")
        axis.set_xticks(k)
        axis.legend(fontsize=8)
    return fig


def fig_mode_test(m):
    mt = m["mode_test"]
    K = m["K"]
    cols = min(K, 4)
    rows = (K + cols - 1) // cols
    fig, ax = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, constrained_layout=True)
    for k in range(rows * cols):
        axis = ax[k // cols, k % cols]
        if k >= K:
            axis.axis("off")
            continue
        null = mt["null"][:, k]
        null = null[np.isfinite(null)]
        if null.size:
            axis.hist(null, bins=30, color="0.7", label="null (permuted labels)")
        obs = mt["statistic"][k]
        if np.isfinite(obs):
            axis.axvline(obs, color="tab:red", lw=2, label="observed")
        sim = mt["similarity"][:, k]
        y0 = axis.get_ylim()[1]
        axis.plot(sim, np.full(sim.shape, 0.05 * y0), "|", color="tab:blue", ms=12, label="animals")
        axis.set_title("mode %d: %s = %s, p = %s\ncorrected %s: %s" % (
            k, mt.get("statistic_name") or "statistic", fmt(obs, "%.3f"), fmt(mt["p_value"][k], "%.3g"),
            fmt(mt["p_corrected"][k], "%.3g"), "conserved" if mt["conserved"][k] else "not conserved"), fontsize=9)
        axis.set_xlabel("similarity")
        if k == 0:
            axis.legend(fontsize=7)
    return fig


def fig_index(m):
    c = m["conservation"]
    ids = m["animal_ids"]
    idx = np.asarray(c["index"], dtype=float)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(ids) + 2), 3), constrained_layout=True)
    x = np.arange(len(ids))
    ok = np.isfinite(idx)
    ax.bar(x[ok], idx[ok], color="tab:purple")
    for i in x[~ok]:
        ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8)
    ax.axhline(0, color="k", lw=0.6)
    ax.axhline(1, color="0.5", lw=0.6, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels(ids, rotation=90 if len(ids) > 10 else 0)
    ax.set_ylabel("conservation index")
    ax.set_title("(R2_shared - R2_null) / (R2_own - R2_null)", fontsize=9)
    return fig


def match_modes(A, B):
    """Best one-to-one matching of rows of A to rows of B by cosine (exhaustive over the
    assignments of the smaller side when there are at most 500000, else greedy). Returns
    [(i, j, cosine)] sorted by i."""
    def unit(X):
        n = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(n > 0, n, 1)
    C = unit(A) @ unit(B).T
    flip = C.shape[0] > C.shape[1]
    S = C.T if flip else C  # rows: the smaller side
    n, m = S.shape
    pairs = []
    if math.perm(m, n) <= 500000:
        best = -np.inf
        for cols in itertools.permutations(range(m), n):
            v = S[np.arange(n), cols].sum()
            if v > best:
                best, pairs = v, list(zip(range(n), cols))
    else:
        Sw = S.copy()
        for _ in range(n):
            r, c = np.unravel_index(np.argmax(Sw), Sw.shape)
            pairs.append((r, c))
            Sw[r, :] = -np.inf
            Sw[:, c] = -np.inf
    if flip:
        pairs = [(c, r) for r, c in pairs]
    return sorted([(int(i), int(j), float(C[i, j])) for i, j in pairs])


def load_truth(cohort, m):
    path = os.path.join(cohort, "truth", "cohort.h5") if cohort else None
    if not path or not os.path.exists(path):
        return None
    with h5py.File(path, "r") as f:
        tr = {"path": path, "modes": f["modes"][()], "regions": strings(f["region_names"]),
              "conserved": f["mode_conserved"][()] if "mode_conserved" in f else None,
              "individual": attr(f, "individual_mode", -1)}
    # True modes on the recovered modes' region list (by name); self pairs dropped as the fit did.
    R = m["regions"]
    idx = [tr["regions"].index(r) if r in tr["regions"] else -1 for r in R]
    T = np.zeros((tr["modes"].shape[0], len(R), len(R)))
    for q, iq in enumerate(idx):
        for s, js in enumerate(idx):
            if iq >= 0 and js >= 0 and (m["self_pairs"] or q != s):
                T[:, q, s] = tr["modes"][:, iq, js]
    tr["on_modes_regions"] = T
    tr["matches"] = match_modes(m["modes"].reshape(m["K"], -1), T.reshape(T.shape[0], -1))
    return tr


def fig_truth(m, tr):
    T = tr["on_modes_regions"]
    matches = tr["matches"]
    matched_true = {j for _, j, _ in matches}
    rows = [(i, j, c) for i, j, c in matches]
    # Unmatched modes two per row (recovered ones on the left, then true ones).
    extra = [(i, None) for i in range(m["K"]) if i not in {r[0] for r in matches}]
    extra += [(None, j) for j in range(T.shape[0]) if j not in matched_true]
    for e in range(0, len(extra), 2):
        two = extra[e:e + 2]
        rows.append(("pack", two, None))
    fig, ax = plt.subplots(len(rows), 2, figsize=(7.5, 3.2 * len(rows)), squeeze=False, constrained_layout=True)

    def one(axis, i, j, c=None):
        if i is not None:
            mx = float(np.max(m["modes"][i])) or 1.0
            mode_heatmap(axis, m["modes"][i], m["regions"], m["self_pairs"], mx,
                         "recovered mode %d%s" % (i, " (unmatched)" if c is None else " (cosine %.3f)" % c))
        elif j is not None:
            mx = float(np.max(T[j])) or 1.0
            label = "true mode %d" % j
            if tr["conserved"] is not None and not tr["conserved"][j]:
                label += " (individual)"
            mode_heatmap(axis, T[j], m["regions"], m["self_pairs"], mx, label + ("" if c is not None else " (unmatched)"))
        else:
            axis.axis("off")

    for r, (i, j, c) in enumerate(rows):
        if i == "pack":
            for col in range(2):
                one(ax[r, col], *(j[col] if col < len(j) else (None, None)))
            continue
        one(ax[r, 0], i, None, c)
        one(ax[r, 1], None, j, c)
    return fig


# ---------------------------------------------------------------------------------------------
# The page

CSS = """
body{font-family:sans-serif;margin:1.5em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:0.5em 0}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;font-size:14px}
th{background:#eee}
tr.failed td{background:#fde2e2}
p.warning{background:#fde2e2;border:2px solid #c00;padding:6px;font-weight:bold}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:13px;color:#444;max-width:1100px}
.problem{color:#a00}
.missing{background:#fff4d6;padding:0.6em;border:1px solid #e0c060}
pre{background:#f6f6f6;padding:0.6em;overflow-x:auto;font-size:12px}
h2{border-bottom:2px solid #ccc;padding-bottom:3px;margin-top:1.6em}
"""


def write_atomic(path, data):
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description="cohortnet report: HTML page and figures of a study's results")
    p.add_argument("--results", required=True, help="the study's results folder (fits/, modes.h5)")
    p.add_argument("--cohort", default=None, help="cohort folder (animal files, truth/); default: from the fits")
    p.add_argument("--modes", default=None, help="modes.h5 (default RESULTS/modes.h5)")
    p.add_argument("--out", default=None, help="output folder (default RESULTS/report)")
    args = p.parse_args(argv)

    results = args.results
    if not os.path.isdir(results):
        print("report: error: --results: folder %s does not exist" % results, file=sys.stderr)
        return 1
    fits_dir = os.path.join(results, "fits")
    modes_path = args.modes or os.path.join(results, "modes.h5")
    if not os.path.isdir(fits_dir) and not os.path.exists(modes_path):
        print("report: error: --results %s: has neither fits/ (%s) nor modes.h5 (%s); run cohortnet fit and "
              "cohortnet modes first" % (results, fits_dir, modes_path), file=sys.stderr)
        return 1
    out = args.out or os.path.join(results, "report")
    os.makedirs(out, exist_ok=True)

    fit_files = sorted(os.path.join(fits_dir, n) for n in os.listdir(fits_dir) if n.endswith(".h5")) \
        if os.path.isdir(fits_dir) else []
    cohort = find_cohort(args, fit_files, os.path.join(fits_dir, "summary.txt"))
    if args.cohort and not os.path.isdir(args.cohort):
        note("--cohort", "folder %s does not exist" % args.cohort)
        cohort = None
    if cohort is None:
        note("cohort", "cohort folder not found (give --cohort): no recorded activity, behaviour or ground truth")
    if not os.path.isdir(fits_dir):
        note("fits", "no fits/ folder in %s: no per-animal section" % results)
    animals = load_animals(results, cohort)

    m = None
    try:
        m = load_modes(modes_path)
    except Exception as e:
        note("modes.h5", "%s cannot be read: %s" % (modes_path, e))
    if m is None and not any(w == "modes.h5" for w, _ in problems):
        note("modes.h5", "%s not found: the modes stage has not run (or wrote elsewhere); no cohort section" % modes_path)

    truth = None
    if m is not None and cohort:
        try:
            truth = load_truth(cohort, m)
        except Exception as e:
            note("truth/cohort.h5", "cannot be read: %s" % e)

    figs = Figures(out)
    # ---- numbers of the summary table (summary.json holds them exactly)
    ok = [a for a in animals if a["final_pvar"] is not None and a["status"].startswith("ok")]
    failed = [a for a in animals if a["status"] == "failed"]
    poor = [a for a in animals if a["status"] == "poor"]
    stale = stale_inputs(m, animals) if m is not None else []
    other = [a for a in animals if a not in ok and a not in failed and a not in poor]
    warnings = quality_warnings(animals, poor, m)
    tc = (m or {}).get("truth_check")
    if tc is not None and not tc["pass"]:  # the loudest line of the page: the answer is wrong on the truth
        warnings.insert(0, "WARNING: on this simulated cohort the modes do not recover the ground truth, so "
                           "they are not a result: " + tc["verdict"])
    cons = (m or {}).get("conservation")
    mt = (m or {}).get("mode_test")
    index_of = {}
    if m is not None and cons is not None and "index" in cons:
        index_of = {aid: float(cons["index"][i]) for i, aid in enumerate(m["animal_ids"])}
    summary = {
        "results": os.path.abspath(results), "cohort": os.path.abspath(cohort) if cohort else None,
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "n_animals": len(animals), "n_ok": len(ok), "n_failed": len(failed), "n_poor": len(poor),
        "n_other": len(other), "warnings": warnings,
        "mean_final_pvar": num(np.mean([a["final_pvar"] for a in ok])) if ok else None,
        "animals": [{"id": a["id"], "status": a["status"], "reason": a["reason"], "n_units": a["n_units"],
                     "n_samples": a["n_samples"], "regions": a["regions"], "runs_done": a["runs_done"],
                     "final_pvar": num(a["final_pvar"]), "final_chi2": num(a["final_chi2"]),
                     "pvar_train": num(a["pvar_train"]), "pvar_heldout": num(a["pvar_heldout"]),
                     "pvar_noise_free": num(a["pvar_noise_free"]), "baseline_best": num(a["baseline_best"]),
                     "baseline_best_name": a["baseline_best_name"],
                     "conservation_index": num(index_of[a["id"]]) if a["id"] in index_of else None,
                     "gains_kept": a["gains"]["kept"] if a.get("gains") else None,
                     "gains_targets": a["gains"]["targets"] if a.get("gains") else None,
                     "gains_r_truth": num(a["gains"]["r"]) if a.get("gains") else None}
                    for a in animals],
        "modes": None,
        "stale": stale,
    }
    if m is not None:
        ms = {"file": os.path.abspath(m["path"]), "K": m["K"], "regions": m["regions"], "animal_ids": m["animal_ids"],
              "left_out": [{"id": a, "reason": r} for a, r in m["left_out"]],
              "summary": m["summary"], "source": m["source"], "stability": num(m["stability"]),
              "k_chosen": m["select_k"]["k_chosen"] if "select_k" in m else None,
              "k_reason": m["select_k"]["reason"] if "select_k" in m else None, "modes": []}
        for k in range(m["K"]):
            e = {"mode": k, "top_pairs": top_pairs(m["modes"][k], m["regions"], m["self_pairs"])}
            if mt is not None:
                e.update(conserved=bool(mt["conserved"][k]), statistic=num(mt["statistic"][k]),
                         p_value=num(mt["p_value"][k]), p_corrected=num(mt["p_corrected"][k]))
            if "behaviour" in m:
                e["behaviour_agreement"] = num(m["behaviour"]["agreement"][k])
            ms["modes"].append(e)
        ms["conserved"] = [k for k in range(m["K"]) if mt is not None and mt["conserved"][k]] if mt is not None else None
        if mt is not None:
            ms["alpha"] = num(mt["alpha"])
            ms["permutations"] = mt["permutations"]
            ms["statistic"] = mt["statistic_name"]
        ms["truth_check"] = tc
        summary["modes"] = ms
    if truth is not None:
        summary["truth"] = {"file": os.path.abspath(truth["path"]), "n_true_modes": int(truth["modes"].shape[0]),
                            "matches": [{"recovered": i, "true": j, "cosine": num(c)} for i, j, c in truth["matches"]]}

    # ---- page
    H = []
    title = "cohortnet report: %s" % os.path.basename(os.path.abspath(results))
    H.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title><style>%s</style>"
             "</head><body>\n" % (esc(title), CSS))
    H.append("<h1>%s</h1>\n<p>Results <code>%s</code>; cohort <code>%s</code>; generated %s. Every number below is "
             "read from the HDF5 outputs (docs/fit.md, docs/modes.md); <a href=\"summary.json\">summary.json</a> "
             "holds the table's numbers exactly.</p>\n" % (esc(title), esc(summary["results"]),
                                                          esc(summary["cohort"] or "not found"), esc(summary["generated"])))
    # What must not be missed comes first: fits that do not beat their baselines.
    for w in warnings:
        H.append("<p class=\"warning\" data-key=\"warning\">%s</p>\n" % esc(w))
    # Summary table
    H.append("<h2 id=\"summary\">Summary</h2>\n<table>\n<tr><th>animals</th>%s</tr>\n" % cell(
        len(animals), "%d (%d fitted, %d failed%s%s)" % (len(animals), len(ok), len(failed),
                                                       ", %d poor" % len(poor) if poor else "",
                                                       ", %d other" % len(other) if other else ""), "n_animals"))
    H.append("<tr><th>fit quality</th>%s</tr>\n" % cell(
        summary["mean_final_pvar"], "mean final pVar %s over %d fitted animals" % (fmt(summary["mean_final_pvar"]), len(ok))
        if ok else "no fitted animal", "mean_final_pvar"))
    gated = [a for a in ok + poor if a.get("gains")]
    if gated:
        kept = sum(a["gains"]["kept"] for a in gated)
        targets = sum(a["gains"]["targets"] for a in gated)
        rs = [a["gains"]["r"] for a in gated if a["gains"]["r"] is not None]
        text_ = "kept in %d of %d target regions over %d gated fits (fit --gains: where nested cross-validation " \
                "says they predict)" % (kept, targets, len(gated))
        if rs:
            text_ += "; against the simulator's true gains: median r %.3f (per animal %.2f-%.2f; coupled pairs of " \
                     "kept targets)" % (np.median(rs), min(rs), max(rs))
        summary["gains"] = {"kept": kept, "targets": targets, "fits": len(gated),
                            "r_truth_median": num(np.median(rs)) if rs else None}
        H.append("<tr><th>pathway gains</th><td data-key=\"gains_kept\" data-value=\"%d\">%s</td></tr>\n" % (
            kept, esc(text_)))
    if failed:
        H.append("<tr><th>failed animals</th><td>%s</td></tr>\n" % "<br>".join(
            "<b>%s</b>: %s" % (esc(a["id"]), esc(a["reason"] or "no reason recorded")) for a in failed))
    else:
        H.append("<tr><th>failed animals</th><td>none</td></tr>\n")
    if m is not None and m["left_out"]:
        H.append("<tr><th>left out of the modes</th><td>%s</td></tr>\n" % "<br>".join(
            "<b>%s</b>: %s" % (esc(a), esc(r)) for a, r in m["left_out"]))
    if stale:
        H.append("<tr><th>stale inputs</th><td class=\"failed\">%s</td></tr>\n" % "<br>".join(esc(x) for x in stale))
    if m is not None:
        H.append("<tr><th>modes</th>%s</tr>\n" % cell(m["K"], "K = %d over %d regions (%s; %s)" % (
            m["K"], len(m["regions"]), ", ".join(m["regions"]), summary["modes"]["k_reason"] or "K fixed"), "K"))
        if tc is not None:
            H.append("<tr><th>against the truth</th><td%s data-key=\"truth_check\" data-value=\"%s\">%s</td></tr>\n" % (
                "" if tc["pass"] else " class=\"failed\"", "pass" if tc["pass"] else "fail", esc(tc["verdict"])))
        if mt is not None:
            cs = summary["modes"]["conserved"]
            rule = "Bonferroni-corrected permutation p &lt; %s" % esc(fmt(mt["alpha"], "%g"))
            if mt.get("min_similarity") is not None:
                rule += " and %s similarity &gt;= %s" % (esc(mt["statistic_name"]), esc(fmt(mt["min_similarity"], "%g")))
            H.append("<tr><th>conserved modes</th><td data-key=\"conserved\" data-value=\"%s\">%s (%s; %s "
                     "permutations)</td></tr>\n" % (
                         esc(",".join(map(str, cs))), esc(", ".join("mode %d" % k for k in cs) if cs else "none"),
                         rule, esc(mt["permutations"])))
        else:
            H.append("<tr><th>conserved modes</th><td>not computed (modes ran with --no-conserve)</td></tr>\n")
    else:
        H.append("<tr><th>modes</th><td class=\"missing\">no modes.h5 yet (%s): the modes stage has not run</td></tr>\n"
                 % esc(modes_path))
    H.append("</table>\n")
    # Per-animal table
    H.append("<table>\n<tr><th>animal</th><th>status</th><th>units</th><th>samples</th><th>regions</th><th>runs</th>"
             "<th>final pVar</th><th>in-sample pVar (non-reset)</th><th>held-out pVar (non-reset)</th>"
             "<th>best baseline, held out</th><th>final chi2</th><th>conservation index</th>%s<th>reason</th></tr>\n"
             % ("<th>gains kept</th><th>gains r (truth)</th>" if gated else ""))
    for a in animals:
        cls = ' class="failed"' if not a["status"].startswith("ok") else ""
        base = fmt(a["baseline_best"]) + (" (%s)" % a["baseline_best_name"] if a["baseline_best_name"] else "")
        reason = a["reason"] or (a["status_reason"] if a["status"] == "poor" else "") or ""
        H.append("<tr%s>%s%s%s%s%s%s%s%s%s%s%s%s%s%s</tr>\n" % (
            cls, cell(None, a["id"]), cell(None, a["status"], None), cell(a["n_units"], a["n_units"], "units:" + a["id"]),
            cell(a["n_samples"], a["n_samples"], "samples:" + a["id"]), cell(None, ", ".join(a["regions"])),
            cell(a["runs_done"], a["runs_done"], "runs:" + a["id"]),
            cell(a["final_pvar"], fmt(a["final_pvar"]), "pvar:" + a["id"]),
            cell(a["pvar_train"], fmt(a["pvar_train"]), "pvar_train:" + a["id"]),
            cell(a["pvar_heldout"], fmt(a["pvar_heldout"]), "pvar_heldout:" + a["id"]),
            cell(a["baseline_best"], base, "baseline:" + a["id"]),
            cell(a["final_chi2"], fmt(a["final_chi2"], "%.4g"), "chi2:" + a["id"]),
            cell(index_of.get(a["id"]), fmt(index_of.get(a["id"]), "%.3f"), "index:" + a["id"]),
            gains_cells(a) if gated else "", cell(None, reason)))
    H.append("</table>\n")
    if m is not None:
        H.append("<table>\n<tr><th>mode</th><th>conserved</th><th>statistic</th><th>p</th><th>corrected p</th>"
                 "<th>behaviour agreement</th><th>strongest pairs (target&lt;-source)</th></tr>\n")
        for e in summary["modes"]["modes"]:
            k = e["mode"]
            H.append("<tr>%s%s%s%s%s%s%s</tr>\n" % (
                cell(None, k), cell(None, ("yes" if e["conserved"] else "no") if "conserved" in e else "n/a"),
                cell(e.get("statistic"), fmt(e.get("statistic"), "%.4f"), "statistic:%d" % k),
                cell(e.get("p_value"), fmt(e.get("p_value"), "%.4g"), "p:%d" % k),
                cell(e.get("p_corrected"), fmt(e.get("p_corrected"), "%.4g"), "p_corrected:%d" % k),
                cell(e.get("behaviour_agreement"), fmt(e.get("behaviour_agreement"), "%.3f"), "agreement:%d" % k),
                cell(None, ", ".join(e["top_pairs"]))))
        H.append("</table>\n")
    H.append(PROBLEMS)  # filled in at the end: figures can add problems too
    # Cohort section
    H.append("<h2 id=\"cohort\">Cohort: shared modes</h2>\n")
    if m is None:
        H.append("<p class=\"missing\">No modes.h5 yet (%s): run <code>cohortnet modes --input %s --out %s</code>."
                 "</p>\n" % (esc(modes_path), esc(results), esc(results)))
    else:
        H.append(figs.make("modes", "Every shared mode as a target (row) x source (column) region heatmap; weights "
                           "are the columns of /W (unit norm)%s." % (
                               "; grey diagonal: within-region pairs are excluded" if not m["self_pairs"] else ""),
                           lambda: fig_modes(m)))
        if m["activations"]:
            H.append(figs.make("activations", "Activation of every mode over time per animal (/activations, on the "
                               "animal's scaled data); background: behaviour state where labels exist.",
                               lambda: fig_activations(m, animals)))
        if "select_k" in m:
            sk = m["select_k"]
            H.append(figs.make("select_k", "Choice of K: held-out error of the cross-validation folds and stability "
                               "of W across random starts. Rule: %s. Chosen: %s." % (esc(sk["rule"]), esc(sk["reason"])),
                               lambda: fig_select_k(m)))
        else:
            H.append("<p>K was fixed (--k N): no cross-validation curves.</p>\n")
        if mt is not None:
            H.append(figs.make("conservation_modes", "Conservation per mode: the observed statistic (%s over animals "
                               "of the similarity of the animal's own mode to the mode fitted without it; blue ticks: "
                               "the animals) against its permutation null. Definition (modes.h5 /mode_test): %s." % (
                                   esc(mt["statistic_name"]), esc(mt["definition"])),
                               lambda: fig_mode_test(m)))
        if cons is not None and "index" in cons:
            H.append(figs.make("conservation_animals", "Leave-one-animal-out conservation index per animal: 1 = the "
                               "shared modes (fitted without the animal) explain it as well as its own modes, 0 = no "
                               "better than with its region labels permuted.",
                               lambda: fig_index(m)))
            H.append("<table>\n<tr><th>animal</th><th>index</th><th>R2 shared</th><th>R2 own</th><th>R2 null</th></tr>\n")
            for i, aid in enumerate(m["animal_ids"]):
                H.append("<tr>%s%s%s%s%s</tr>\n" % (cell(None, aid), *[
                    cell(num(cons[k][i]), fmt(num(cons[k][i]), "%.4g"), "%s:%s" % (k, aid))
                    for k in ("index", "r2_shared", "r2_own", "r2_null")]))
            H.append("</table>\n")
        if truth is not None:
            H.append(figs.make("truth_modes", "Simulated cohort: recovered modes (left) next to the true modes of "
                               "truth/cohort.h5 (right) on the same regions, matched one-to-one by cosine "
                               "(computed here, only for this comparison).", lambda: fig_truth(m, truth)))
        txt = read_text(os.path.join(os.path.dirname(modes_path), "modes_summary.txt"))
        if txt:
            H.append("<details><summary>modes_summary.txt</summary><pre>%s</pre></details>\n" % esc(txt))
    # Per-animal sections
    H.append("<h2 id=\"animals\">Animals</h2>\n")
    for a in animals:
        H.append("<h3 id=\"animal-%s\">%s</h3>\n" % (esc(a["id"]), esc(a["id"])))
        if a["fit_file"] is None:
            H.append("<p class=\"problem\">%s: %s. %s</p>\n" % (esc(a["id"]), esc(a["status"]),
                                                                esc(a["reason"] or "No fit output.")))
            continue
        H.append("<p>%d units, %d samples, regions %s; final pVar %s.</p>\n" % (
            a["n_units"], a["n_samples"], esc(", ".join(a["regions"])), esc(fmt(a["final_pvar"]))))
        H.append(figs.make("fit_" + a["id"], "pVar and chi2 of every run (training runs, then free runs).",
                           lambda a=a: fig_training(a)))
        try:
            D, rates, lab, starts = target_and_rates(a)
        except Exception as e:
            note("animal " + a["id"], "activity cannot be read: %s" % e)
            D = None
            rates = None
        if rates is not None:
            if D is None:
                H.append("<p class=\"missing\">Recorded activity not shown: animal file not found (give --cohort).</p>\n")
            H.append(figs.make("activity_" + a["id"], "Recorded activity (divided by /target_scale and clipped as the "
                               "fit's target) and the model's rates, units grouped by region.",
                               lambda: fig_activity(a, D, rates, lab)))
            H.append(figs.make("traces_" + a["id"], "Recorded (black) and model (red) activity of %d units per region."
                               % UNITS_PER_REGION, lambda: fig_traces(a, D, rates, lab, starts)))
        H.append(figs.make("currents_" + a["id"], "Current decomposition (/currents): current into each target region "
                           "(row) from each source region (column), root-mean-square and mean over the target's units, "
                           "in the model's units; grey panels: within-region.", lambda a=a: fig_currents(a)))
        if a.get("gains") and a["gains"].get("show"):
            H.append(figs.make("gains_" + a["id"], "Gated pathways: fitted gains (red) against the simulator's true "
                               "gains (black) on the %d most modulated coupled pathways of kept targets, each divided "
                               "by its rms (the gains' scale sits in J); median r over all %d such pairs %.3f." % (
                                   len(a["gains"]["show"]), a["gains"]["pairs"], a["gains"]["r"]),
                               lambda a=a: fig_gains(a)))
    fit_txt = read_text(os.path.join(fits_dir, "summary.txt"))
    if fit_txt:
        H.append("<details><summary>fits/summary.txt</summary><pre>%s</pre></details>\n" % esc(fit_txt))
    if m is not None and m.get("config"):
        H.append("<details><summary>modes configuration</summary><pre>%s</pre></details>\n" % esc(m["config"]))
    H.append("</body></html>\n")

    summary["figures"] = figs.names
    summary["problems"] = [{"where": w, "message": msg} for w, msg in problems]
    write_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=1, allow_nan=False) + "\n")
    box = ""
    if problems:
        box = "<div class=\"missing\"><b>Missing or unreadable parts</b><ul>%s</ul></div>\n" % "".join(
            "<li>%s: %s</li>" % (esc(w), esc(msg)) for w, msg in problems)
    write_atomic(os.path.join(out, "index.html"), "".join(box if h is PROBLEMS else h for h in H))
    print("report: wrote %s (%d figures%s)" % (os.path.join(out, "index.html"), len(figs.names),
                                               ", %d problems noted" % len(problems) if problems else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
