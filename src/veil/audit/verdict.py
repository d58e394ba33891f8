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


def verdict(report: dict) -> dict:
    """Per protocol: original vs chance; obfuscator vs every baseline (at matched utility when
    swept) on worst-case identity; the same for attribute mA."""
    methods, baselines = report["methods"], report["baselines"]
    out: dict = {"protocols": {}}
    obf = methods.get("obfuscator")

    def baseline_entry(name: str) -> dict:
        cal = report["curves"].get(name, {}).get("calibrated")
        return methods[cal["method"]] if cal else methods[name]

    for protocol in report["protocols"]:
        chance = report["labels"]["identity"][protocol]["chance"]["majority"]
        orig = methods["original"]["identity"][protocol]["worst_case"]
        entry: dict = {"chance": chance, "original": orig["value"], "original_interval": orig["interval"],
                       "original_vs_chance": above(orig, chance)}
        if obf is not None:
            mine = obf["identity"][protocol]["worst_case"]
            entry["obfuscator"] = mine["value"]
            entry["obfuscator_interval"] = mine["interval"]
            entry["obfuscator_vs_chance"] = above(mine, chance)
            entry["obfuscator_vs_original"] = compare(mine, orig)
            entry["baselines"] = {}
            for name in baselines:
                m = baseline_entry(name)
                theirs = m["identity"][protocol]["worst_case"]
                entry["baselines"][name] = {"identity": theirs["value"], "interval": theirs["interval"],
                                            "relative_ap": m["relative_ap"], "obfuscator_is": compare(mine, theirs)}
            outcomes = [b["obfuscator_is"] for b in entry["baselines"].values()]
            entry["better_than_every_baseline"] = bool(outcomes) and all(o == BETTER for o in outcomes)
            entry["worse_than_any_baseline"] = WORSE in outcomes
        out["protocols"][protocol] = entry
    if obf is not None and "attributes" in obf:
        mine = obf["attributes"]["worst_case"]
        out["attributes"] = {"obfuscator_mA": mine["value"], "interval": mine["interval"],
                             "original_mA": methods["original"]["attributes"]["worst_case"]["value"],
                             "obfuscator_vs_original": compare(mine, methods["original"]["attributes"]["worst_case"]),
                             "baselines": {n: compare(mine, baseline_entry(n)["attributes"]["worst_case"])
                                           for n in baselines if "attributes" in baseline_entry(n)}}
    if obf is not None:
        out["obfuscator_relative_ap"] = obf["relative_ap"]
        out["every_baseline_matched"] = bool(report["sweep"]) and all(
            report["curves"][n]["calibrated"]["matched"] for n in baselines)
    return out
