"""The audit's verdict, read from intervals, never from a bare ``<``.

Two figures of one audit were measured on the same test crops, so they are compared on their
difference: its 95% interval comes from a paired cluster bootstrap (both figures re-computed on
the same resample of test identities, resample by resample). A method is "better" / "worse"
only where that interval excludes 0; otherwise the two are "not distinguishable" at this
audit's size. Figures without replicates (read back from a report) fall back to the stricter
rule that their own intervals must not overlap.
"""

from __future__ import annotations

import numpy as np

from veil.evaluation.bootstrap import percentile_interval

BETTER, WORSE, TIE = "better", "worse", "not distinguishable"
#: key of a worst-case figure's bootstrap replicates (set by veil.audit.attacks.summarise);
#: kept in memory for the verdict and dropped before the report is written
PAIRED = "paired"


def difference(a: dict, b: dict) -> dict | None:
    """``a - b`` with its paired 95% interval, or None unless both figures carry replicates of
    the same resamples (same test groups, bootstrap size and seed)."""
    pa, pb = a.get(PAIRED), b.get(PAIRED)
    if pa is None or pb is None or pa["resample"] != pb["resample"]:
        return None
    lo, hi = percentile_interval(np.asarray(pa["replicates"]) - np.asarray(pb["replicates"]))
    return {"value": a["value"] - b["value"], "interval": [lo, hi]}


def drop_replicates(report) -> None:
    """Remove the in-memory bootstrap replicates from every figure anywhere in ``report``."""
    if isinstance(report, dict):
        report.pop(PAIRED, None)
        for value in report.values():
            drop_replicates(value)
    elif isinstance(report, list):
        for value in report:
            drop_replicates(value)


def judge(lower_is_better: dict, other: dict) -> tuple[str, dict | None]:
    """The outcome of :func:`compare` and the paired difference it was read from (None when the
    figures carry no common replicates and the non-overlap rule decided)."""
    d = difference(lower_is_better, other)
    if d is not None:
        lo, hi = d["interval"]
        return (BETTER if hi < 0 else WORSE if lo > 0 else TIE), d
    (a_lo, a_hi), (b_lo, b_hi) = lower_is_better["interval"], other["interval"]
    if a_hi < b_lo:
        return BETTER, None
    if a_lo > b_hi:
        return WORSE, None
    return TIE, None


def compare(lower_is_better: dict, other: dict) -> str:
    """Compare two worst-case figures ({"value", "interval"}) where lower means more private."""
    return judge(lower_is_better, other)[0]


def above(figure: dict, level: float) -> str:
    """Whether a figure is above a fixed level (chance): its whole interval must be."""
    lo, hi = figure["interval"]
    if lo > level:
        return "above"
    if hi < level:
        return "below"
    return TIE


def _against(mine: dict, methods: dict, report: dict, key) -> dict:
    """``mine`` (one worst-case figure) against every baseline's, the matched one when swept."""
    out = {}
    for name in report["baselines"]:
        cal = report["curves"].get(name, {}).get("calibrated")
        m = methods[cal["method"]] if cal else methods[name]
        theirs = key(m)
        if theirs is not None:
            out[name] = (m, theirs, compare(mine, theirs))
    return out


def _identity(m: dict, protocol: str) -> dict:
    return m["identity"][protocol]["worst_case"]


def _attributes(m: dict) -> dict | None:
    return m["attributes"]["worst_case"] if "attributes" in m else None


def obfuscator_verdict(report: dict, name: str) -> dict:
    """One obfuscator against chance, the original frames and every baseline, per protocol and
    for attribute mA."""
    methods = report["methods"]
    obf, orig = methods[name], methods["original"]
    out: dict = {"relative_ap": obf["relative_ap"], "protocols": {}}
    for protocol in report["protocols"]:
        chance = report["labels"]["identity"][protocol]["chance"]["majority"]
        mine = _identity(obf, protocol)
        against = _against(mine, methods, report, lambda m, p=protocol: _identity(m, p))
        outcomes = [o for _, _, o in against.values()]
        out["protocols"][protocol] = {
            "value": mine["value"], "interval": mine["interval"], "vs_chance": above(mine, chance),
            "vs_original": compare(mine, _identity(orig, protocol)),
            "baselines": {b: {"identity": t["value"], "interval": t["interval"], "relative_ap": m["relative_ap"],
                              "obfuscator_is": o} for b, (m, t, o) in against.items()},
            "better_than_every_baseline": bool(outcomes) and all(o == BETTER for o in outcomes),
            "worse_than_any_baseline": WORSE in outcomes}
    mine = _attributes(obf)
    if mine is not None:
        against = _against(mine, methods, report, _attributes)
        out["attributes"] = {"value": mine["value"], "interval": mine["interval"],
                             "vs_original": compare(mine, _attributes(orig)),
                             "baselines": {b: o for b, (_, _, o) in against.items()}}
    return out


def _rounded(d: dict | None) -> dict | None:
    return None if d is None else {"value": round(d["value"], 4), "interval": [round(x, 4) for x in d["interval"]]}


def pairwise(report: dict) -> list[dict]:
    """Every pair of audited obfuscators: is the first more private (better), less (worse) or not
    distinguishable, per identity protocol and for mA, with the paired difference A - B and its
    interval; utility as the AP difference (no interval)."""
    methods, names = report["methods"], list(report.get("obfuscators", {}))
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = methods[a], methods[b]
            row: dict = {"a": a, "b": b, "relative_ap_a_minus_b": ma["relative_ap"] - mb["relative_ap"],
                         "identity": {}, "identity_difference": {}}
            for p in report["protocols"]:
                row["identity"][p], d = judge(_identity(ma, p), _identity(mb, p))
                row["identity_difference"][p] = _rounded(d)
            if _attributes(ma) is not None and _attributes(mb) is not None:
                row["attributes"], d = judge(_attributes(ma), _attributes(mb))
                row["attributes_difference"] = _rounded(d)
            out.append(row)
    return out


def multiplicity(pairs: list[dict], level: float = 0.95) -> dict:
    """How many of the pairwise comparisons came out "better" or "worse", against how many would
    by chance alone if no two obfuscators differed: each comparison is at ``level`` on its own,
    with no correction for the number of comparisons."""
    outcomes = [o for c in pairs for o in [*c["identity"].values(), *([c["attributes"]] if "attributes" in c else [])]]
    return {"comparisons": len(outcomes), "distinguishable": sum(o != TIE for o in outcomes),
            "expected_by_chance": round((1 - level) * len(outcomes), 1)}


def verdict(report: dict) -> dict:
    """Per protocol: original vs chance; each obfuscator vs chance, the original and every baseline
    (at matched utility when swept) on worst-case identity, the same for attribute mA; and the
    obfuscators against each other. The top-level obfuscator fields describe the FIRST one (the
    one the baselines are calibrated to)."""
    methods = report["methods"]
    names = list(report.get("obfuscators", {"obfuscator": None} if "obfuscator" in methods else {}))
    each = {n: obfuscator_verdict(report, n) for n in names}
    first = each[names[0]] if names else None
    out: dict = {"protocols": {}}
    for protocol in report["protocols"]:
        chance = report["labels"]["identity"][protocol]["chance"]["majority"]
        orig = _identity(methods["original"], protocol)
        entry: dict = {"chance": chance, "original": orig["value"], "original_interval": orig["interval"],
                       "original_vs_chance": above(orig, chance)}
        if first is not None:
            v = first["protocols"][protocol]
            entry.update({"obfuscator": v["value"], "obfuscator_interval": v["interval"],
                          "obfuscator_vs_chance": v["vs_chance"], "obfuscator_vs_original": v["vs_original"],
                          "baselines": v["baselines"], "better_than_every_baseline": v["better_than_every_baseline"],
                          "worse_than_any_baseline": v["worse_than_any_baseline"]})
        out["protocols"][protocol] = entry
    if first is not None and "attributes" in first:
        a = first["attributes"]
        out["attributes"] = {"obfuscator_mA": a["value"], "interval": a["interval"],
                             "original_mA": methods["original"]["attributes"]["worst_case"]["value"],
                             "obfuscator_vs_original": a["vs_original"], "baselines": a["baselines"]}
    if first is not None:
        out["obfuscator"] = names[0]
        out["obfuscator_relative_ap"] = first["relative_ap"]
        out["every_baseline_matched"] = bool(report["sweep"]) and all(
            report["curves"][n]["calibrated"]["matched"] for n in report["baselines"])
    if len(names) > 1:
        out["obfuscators"] = each
        out["pairs"] = pairwise(report)
        out["pairs_summary"] = multiplicity(out["pairs"])
    return out
