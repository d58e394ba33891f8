"""The audit's verdict, read from intervals, never from a bare ``<``.

Two figures are "better" / "worse" only when their 95% intervals do not overlap; otherwise
they are "not distinguishable" at this audit's size.
"""

from __future__ import annotations

BETTER, WORSE, TIE = "better", "worse", "not distinguishable"


def compare(lower_is_better: dict, other: dict) -> str:
    """Compare two worst-case figures ({"value", "interval"}) where lower means more private."""
    (a_lo, a_hi), (b_lo, b_hi) = lower_is_better["interval"], other["interval"]
    if a_hi < b_lo:
        return BETTER
    if a_lo > b_hi:
        return WORSE
    return TIE


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


def pairwise(report: dict) -> list[dict]:
    """Every pair of audited obfuscators: is the first more private (better), less (worse) or not
    distinguishable, per identity protocol and for mA; utility as the AP difference (no interval)."""
    methods, names = report["methods"], list(report.get("obfuscators", {}))
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = methods[a], methods[b]
            row = {"a": a, "b": b, "relative_ap_a_minus_b": ma["relative_ap"] - mb["relative_ap"],
                   "identity": {p: compare(_identity(ma, p), _identity(mb, p)) for p in report["protocols"]}}
            if _attributes(ma) is not None and _attributes(mb) is not None:
                row["attributes"] = compare(_attributes(ma), _attributes(mb))
            out.append(row)
    return out


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
    return out
