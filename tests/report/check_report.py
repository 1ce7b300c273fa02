#!/usr/bin/env python3
"""Checks a cohortnet report against the HDF5 outputs it was made from.

usage: check_report.py --results DIR --report DIR [--expect-failed ID ...] [--expect-no-modes]
                       [--expect-truth]

Every number of the summary table (report/summary.json, and the data-value of the page's table
cells) must equal the value in fits/<id>.h5, fits/summary.csv and modes.h5 exactly; failed animals
must be listed with their reason; every figure must exist, be a PNG and be shown by the page; the
page must load nothing from the network.
"""
import argparse
import csv
import html.parser
import json
import math
import os
import sys

import h5py
import numpy as np

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


def same(a, b):
    """Exactly equal, with NaN (null in JSON) equal to NaN."""
    if a is None or b is None:
        fa = float("nan") if a is None else float(a)
        fb = float("nan") if b is None else float(b)
        return math.isnan(fa) and math.isnan(fb)
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    return a == b


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.values, self.images, self.remote = {}, [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-key" in a:
            self.values[a["data-key"]] = a.get("data-value")
        if tag == "img":
            self.images.append(a.get("src", ""))
        for k in ("src", "href"):
            v = a.get(k, "")
            if v.startswith(("http:", "https:", "//")):
                self.remote.append(v)


def page_number(page, key):
    v = page.values.get(key)
    return None if v is None or v == "nan" else float(v)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--expect-failed", nargs="*", default=[])
    p.add_argument("--expect-no-modes", action="store_true")
    p.add_argument("--expect-truth", action="store_true")
    p.add_argument("--expect-gains", action="store_true", help="gated fits (fit --gains) with kept gains and truth")
    a = p.parse_args()

    index = os.path.join(a.report, "index.html")
    with open(index, encoding="utf-8") as fh:
        text = fh.read()
    with open(os.path.join(a.report, "summary.json")) as fh:
        js = json.load(fh)
    page = Page()
    page.feed(text)
    check(not page.remote, "page loads from the network: %s" % page.remote)
    check(not [n for n in os.listdir(a.report) if ".partial" in n], "temporary files left in %s" % a.report)

    # Figures: every one listed exists, is a PNG and is shown; every image shown exists.
    for name in js["figures"]:
        path = os.path.join(a.report, name)
        with open(path, "rb") as fh:
            check(fh.read(8) == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path)
        check(name in page.images, "figure %s not shown in the page" % name)
    for src in page.images:
        check(os.path.exists(os.path.join(a.report, src)), "page shows missing image %s" % src)

    # Animals: fits/summary.csv and fits/<id>.h5 against the table.
    with open(os.path.join(a.results, "fits", "summary.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    byid = {x["id"]: x for x in js["animals"]}
    check([r["animal_id"] for r in rows] == [x["id"] for x in js["animals"]], "animals differ from summary.csv")
    ok_ids = []
    gated_kept = []
    for r in rows:
        aid = r["animal_id"]
        x = byid.get(aid)
        if x is None:
            continue
        check(x["status"] == r["status"], "%s: status %s, summary.csv %s" % (aid, x["status"], r["status"]))
        check(x["reason"] == r["message"], "%s: reason %r, summary.csv %r" % (aid, x["reason"], r["message"]))
        if r["status"] == "poor":  # read and shown (the evidence), not counted among the ok fits
            check(x["pvar_heldout"] is not None, "%s: poor fit without its held-out pVar" % aid)
            continue
        if r["status"] != "ok":
            check(x["final_pvar"] is None, "%s: failed animal with a pVar" % aid)
            continue
        ok_ids.append(aid)
        with h5py.File(os.path.join(a.results, "fits", aid + ".h5"), "r") as f:
            want = {"final_pvar": float(f.attrs["final_pvar"]), "final_chi2": float(f["chi2"][-1]),
                    "n_units": int(f["unit_region"].shape[0]), "n_samples": int(f["rates"].shape[1]),
                    "runs_done": int(f["pvar"].shape[0])}
            check(float(f["pvar"][-1]) == want["final_pvar"], "%s: final_pvar attribute != last /pvar" % aid)
            # Gated pathways (fit --gains): kept targets as in /gains_model/kept; none for a fixed J.
            kept = int(np.sum(f["gains_model/kept"][()])) if "gains_model/kept" in f else None
        for k, v in want.items():
            check(same(x[k], v), "%s: summary.json %s = %r, HDF5 %r" % (aid, k, x[k], v))
        for key, k in (("pvar", "final_pvar"), ("chi2", "final_chi2"), ("units", "n_units"),
                       ("samples", "n_samples"), ("runs", "runs_done")):
            check(same(page_number(page, "%s:%s" % (key, aid)), want[k]),
                  "%s: page %s = %r, HDF5 %r" % (aid, key, page.values.get("%s:%s" % (key, aid)), want[k]))
        check(x["gains_kept"] == kept, "%s: summary.json gains_kept %r, HDF5 %r" % (aid, x["gains_kept"], kept))
        if kept is not None:
            check(same(page_number(page, "gains_kept:" + aid), kept), "%s: page gains_kept %r, HDF5 %r" % (
                aid, page.values.get("gains_kept:" + aid), kept))
            r = x["gains_r_truth"]
            check(kept == 0 or r is not None, "%s: kept gains on a simulated cohort without their r" % aid)
            check(r is None or -1 <= r <= 1, "%s: gains r %r" % (aid, r))
            check(r is None or ("gains_" + aid + ".png") in js["figures"], "%s: gains figure missing" % aid)
            gated_kept.append(kept)
        for fig in ("fit_", "activity_", "traces_", "currents_"):
            check(fig + aid + ".png" in js["figures"], "%s: figure %s missing" % (aid, fig + aid))
    check(js["n_ok"] == len(ok_ids), "n_ok %d, expected %d" % (js["n_ok"], len(ok_ids)))
    if a.expect_gains:  # the summary row at the top, and kept gains that follow the truth
        check(sum(gated_kept) > 0, "no gated fit kept gains")
        check(js.get("gains", {}).get("kept") == sum(gated_kept), "summary gains %r, HDF5 kept %r" % (
            js.get("gains"), gated_kept))
        check(same(page_number(page, "gains_kept"), sum(gated_kept)), "page gains row %r" % page.values.get("gains_kept"))
        r = js["gains"]["r_truth_median"]
        check(r is not None and r > 0.5, "gains against the truth: median r %r (<= 0.5)" % r)
    else:
        check(not gated_kept or "gains" in js, "gated fits without the summary's gains row")
    if ok_ids:
        mean = float(np.mean([byid[i]["final_pvar"] for i in ok_ids]))
        check(same(js["mean_final_pvar"], mean), "mean_final_pvar %r != %r" % (js["mean_final_pvar"], mean))

    # Failed animals: in the table, with their reason, in the page.
    for aid in a.expect_failed:
        x = byid.get(aid)
        check(x is not None and x["status"] == "failed", "%s should be listed as failed" % aid)
        if x is not None:
            check(x["reason"] != "", "%s: no reason" % aid)
            reason = x["reason"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
                .replace('"', "&quot;").replace("'", "&#x27;")
            check("<b>%s</b>: %s" % (aid, reason) in text, "%s: failure and reason not shown in the summary" % aid)
            check(aid + ".png" not in " ".join(js["figures"]), "%s: figures of a failed animal" % aid)
    check(js["n_failed"] == len(a.expect_failed), "n_failed %d, expected %d" % (js["n_failed"], len(a.expect_failed)))

    # Modes.
    modes_path = os.path.join(a.results, "modes.h5")
    if a.expect_no_modes:
        check(js["modes"] is None, "summary.json has modes but none were expected")
        check("no modes.h5 yet" in text, "page does not say that modes.h5 is missing")
    else:
        m = js["modes"]
        check(m is not None, "summary.json has no modes")
        with h5py.File(modes_path, "r") as f:
            K = int(f.attrs["K"])
            check(m["K"] == K, "K %r != %r" % (m["K"], K))
            check(same(page_number(page, "K"), K), "page K %r != %r" % (page.values.get("K"), K))
            t = f["mode_test"]
            conserved = [k for k in range(K) if t["conserved"][k]]
            check(m["conserved"] == conserved, "conserved %r != %r" % (m["conserved"], conserved))
            check(page.values.get("conserved") == ",".join(map(str, conserved)), "page conserved modes differ")
            for k in range(K):
                e = m["modes"][k]
                check(e["conserved"] == bool(t["conserved"][k]), "mode %d conserved differs" % k)
                for key, ds in (("statistic", "statistic"), ("p_value", "p_value"), ("p_corrected", "p_corrected")):
                    v = float(t[ds][k])
                    check(same(e[key], v), "mode %d %s %r != %r" % (k, key, e[key], v))
                for key, ds in (("statistic", "statistic"), ("p", "p_value"), ("p_corrected", "p_corrected")):
                    check(same(page_number(page, "%s:%d" % (key, k)), float(t[ds][k])), "page mode %d %s" % (k, key))
            ids = [s.decode() if isinstance(s, bytes) else s for s in f["animal_ids"][()]]
            check(sorted(ids) == sorted(ok_ids), "modes animals %r, fitted %r" % (ids, ok_ids))
            for i, aid in enumerate(ids):
                v = float(f["conservation/index"][i])
                check(same(byid[aid]["conservation_index"], v), "%s: conservation index differs" % aid)
                check(same(page_number(page, "index:" + aid), v), "%s: page conservation index differs" % aid)
                for ds in ("r2_shared", "r2_own", "r2_null"):
                    check(same(page_number(page, "%s:%s" % (ds, aid)), float(f["conservation/" + ds][i])),
                          "%s: page %s differs" % (aid, ds))
        for fig in ("modes", "activations", "select_k", "conservation_modes", "conservation_animals"):
            check(fig + ".png" in js["figures"], "cohort figure %s missing" % fig)
        check("no modes.h5 yet" not in text, "page says modes.h5 is missing")
    if a.expect_truth:
        check("truth_modes.png" in js["figures"], "truth_modes figure missing")
        check(js.get("truth") is not None and len(js["truth"]["matches"]) > 0, "no truth comparison")
        # The modes stage's own check against the truth: shown as in modes.h5, a failure first of all.
        with h5py.File(os.path.join(a.results, "modes.h5"), "r") as f:
            verdict = f.attrs["truth_check"]
            verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
            text_h5 = f["truth_check"].attrs["verdict"] if "truth_check" in f else None
            text_h5 = text_h5.decode() if isinstance(text_h5, bytes) else text_h5
        check(verdict in ("pass", "fail"), "modes.h5 truth_check is %r on a simulated cohort" % verdict)
        tc = (js.get("modes") or {}).get("truth_check")
        check(tc is not None and tc["pass"] == (verdict == "pass") and tc["verdict"] == text_h5,
              "summary.json truth_check differs from modes.h5")
        check(page.values.get("truth_check") == verdict, "page truth_check row %r, modes.h5 %r" % (
            page.values.get("truth_check"), verdict))
        if verdict == "fail":
            check(js["warnings"] and js["warnings"][0].startswith("WARNING: on this simulated cohort the modes do not "
                                                                  "recover the ground truth"),
                  "a failed truth check is not the report's first warning: %s" % js["warnings"])
            first_warning = text.find('class="warning"')
            check(first_warning >= 0 and "do not recover the ground truth" in text[first_warning:first_warning + 300],
                  "a failed truth check is not the page's first warning")

    if errors:
        for e in errors:
            print("FAIL:", e)
        return 1
    print("check_report: %s OK (%d figures, %d animals)" % (index, len(js["figures"]), len(js["animals"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
