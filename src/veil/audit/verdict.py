"""The audit's verdict, read from intervals, never from a bare ``<``.

Two figures of one audit were measured on the same test crops, so they are compared on their
difference: its 95% interval comes from a paired cluster bootstrap (both figures re-computed on
the same resample of test identities, resample by resample). A method is "better" / "worse"
only where that interval excludes 0; otherwise the two are "not distinguishable" at this
audit's size. Each difference also states the smallest difference the audit could have detected
(two-sided alpha 0.05, 80% power, from the paired bootstrap's standard error), so "not
distinguishable" reads with its power. Figures without replicates (read back from a report)
fall back to the stricter rule that their own intervals must not overlap.
"""

from __future__ import annotations

import numpy as np

from veil.audit.report import (
    BOXES,
    AttributeSummary,
    AttributeVerdict,
    AuditReport,
    BaselineComparison,
    Difference,
    Figure,
    MethodResult,
    ObfuscatorVerdict,
    Outcome,
    PairRow,
    PairsSummary,
    ProtocolSummary,
    ProtocolVerdict,
    Verdict,
    figure_label,
)
from veil.evaluation.bootstrap import percentile_interval
from veil.evaluation.power import minimum_detectable_difference

BETTER: Outcome = "better"
WORSE: Outcome = "worse"
TIE: Outcome = "not distinguishable"


def difference(a: Figure, b: Figure) -> Difference | None:
    """``a - b`` with its paired 95% interval and detectable difference, or None unless both
    figures carry replicates of the same resamples (same test groups, bootstrap size and seed)."""
    pa, pb = a.paired, b.paired
    if pa is None or pb is None or pa.resample != pb.resample:
        return None
    reps = np.asarray(pa.replicates) - np.asarray(pb.replicates)
    lo, hi = percentile_interval(reps)
    finite = reps[np.isfinite(reps)]
    se = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
    return Difference(value=a.value - b.value, interval=(lo, hi), detectable=minimum_detectable_difference(se))


def judge(lower_is_better: Figure, other: Figure) -> tuple[Outcome, Difference | None]:
    """Whether ``lower_is_better`` is "better" (lower), "worse" or "not distinguishable" from
    ``other``, and the paired difference it was read from (None when the figures carry no common
    replicates and the non-overlap rule decided)."""
    d = difference(lower_is_better, other)
    if d is not None:
        lo, hi = d.interval
        return (BETTER if hi < 0 else WORSE if lo > 0 else TIE), d
    (a_lo, a_hi), (b_lo, b_hi) = lower_is_better.interval, other.interval
    if a_hi < b_lo:
        return BETTER, None
    if a_lo > b_hi:
        return WORSE, None
    return TIE, None


def compare(lower_is_better: Figure, other: Figure) -> Outcome:
    """Compare two worst-case figures where lower means more private."""
    return judge(lower_is_better, other)[0]


def above(figure: Figure, level: float) -> str:
    """Whether a figure is above a fixed level (chance): its whole interval must be."""
    lo, hi = figure.interval
    if lo > level:
        return "above"
    if hi < level:
        return "below"
    return TIE


def _rounded(d: Difference | None) -> Difference | None:
    if d is None:
        return None
    return Difference(value=round(d.value, 4), interval=(round(d.interval[0], 4), round(d.interval[1], 4)),
                      detectable=None if d.detectable is None else round(d.detectable, 4))


def _baseline_methods(report: AuditReport) -> dict[str, MethodResult]:
    """Every baseline as compared: its calibrated (matched) point when swept."""
    return {b: report.methods[report.matched(b)] for b in report.baselines if report.matched(b) in report.methods}


def _attribute_floor(report: AuditReport) -> Figure | None:
    """The boxes-only method's attribute mA (the attribute floor), where the report has it."""
    return report.attributes(BOXES) if BOXES in report.methods else None


def obfuscator_verdict(report: AuditReport, name: str, figure: str = "top1") -> ObfuscatorVerdict:
    """One obfuscator against chance, the original frames and every baseline, per protocol (on
    the identity ``figure``) and for attribute mA."""
    obf, orig = report.method(name), report.method("original")
    baselines = _baseline_methods(report)
    protocols = {}
    for protocol in report.protocols:
        mine = obf.identity[protocol].figure(figure)
        against: dict[str, BaselineComparison] = {}
        for b, m in baselines.items():
            theirs = m.identity[protocol].figure(figure)
            outcome, d = judge(mine, theirs)
            against[b] = BaselineComparison(identity=theirs.value, interval=theirs.interval,
                                            relative_ap=m.relative_ap, obfuscator_is=outcome, difference=_rounded(d))
        outcomes = [c.obfuscator_is for c in against.values()]
        vs_original, d_original = judge(mine, orig.identity[protocol].figure(figure))
        vs_boxes, d_boxes = (judge(mine, report.identity(BOXES, protocol, figure)) if BOXES in report.methods
                             else (None, None))
        protocols[protocol] = ProtocolVerdict(
            figure=figure, value=mine.value, interval=mine.interval,
            vs_chance=above(mine, report.identity_chance(protocol, figure)), vs_original=vs_original,
            original_difference=_rounded(d_original), vs_boxes=vs_boxes, boxes_difference=_rounded(d_boxes),
            baselines=against,
            better_than_every_baseline=bool(outcomes) and all(o == BETTER for o in outcomes),
            worse_than_any_baseline=WORSE in outcomes)
    attributes = None
    if obf.attributes is not None and orig.attributes is not None:
        mine = obf.attributes.worst_case
        by_baseline: dict[str, Outcome] = {}
        diffs: dict[str, Difference | None] = {}
        for b, m in baselines.items():
            if m.attributes is not None:
                by_baseline[b], d = judge(mine, m.attributes.worst_case)
                diffs[b] = _rounded(d)
        floor = _attribute_floor(report)
        vs_boxes, d_boxes = judge(mine, floor) if floor is not None else (None, None)
        attributes = AttributeVerdict(value=mine.value, interval=mine.interval,
                                      vs_original=compare(mine, orig.attributes.worst_case), baselines=by_baseline,
                                      differences=diffs, vs_boxes=vs_boxes, boxes_difference=_rounded(d_boxes))
    return ObfuscatorVerdict(relative_ap=obf.relative_ap, protocols=protocols, attributes=attributes)


def pairwise(report: AuditReport, figure: str = "top1") -> list[PairRow]:
    """Every pair of audited obfuscators: is the first more private (better), less (worse) or not
    distinguishable, per identity protocol and for mA, with the paired difference A - B and its
    interval; utility as the AP difference (no interval)."""
    names = list(report.obfuscators)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = report.method(a), report.method(b)
            row = PairRow(a=a, b=b, relative_ap_a_minus_b=ma.relative_ap - mb.relative_ap, identity={})
            for p in report.protocols:
                row.identity[p], d = judge(ma.identity[p].figure(figure), mb.identity[p].figure(figure))
                row.identity_difference[p] = _rounded(d)
            if ma.attributes is not None and mb.attributes is not None:
                row.attributes, d = judge(ma.attributes.worst_case, mb.attributes.worst_case)
                row.attributes_difference = _rounded(d)
            out.append(row)
    return out


def multiplicity(pairs: list[PairRow], level: float = 0.95) -> PairsSummary:
    """How many of the pairwise comparisons came out "better" or "worse", against how many would
    by chance alone if no two obfuscators differed: each comparison is at ``level`` on its own,
    with no correction for the number of comparisons."""
    outcomes = [o for c in pairs for o in [*c.identity.values(), *([c.attributes] if c.attributes else [])]]
    return PairsSummary(comparisons=len(outcomes), distinguishable=sum(o != TIE for o in outcomes),
                        expected_by_chance=round((1 - level) * len(outcomes), 1))


#: where a method sits against a floor (the boxes alone), in words, by the verdict's outcome
_AGAINST_FLOOR: dict[Outcome, str] = {BETTER: "below", WORSE: "above", TIE: "not distinguishable from"}


def _points(d: Difference | None) -> str:
    if d is None:
        return "no paired difference (separate intervals compared)"
    lo, hi = d.interval
    power = f"; detectable at this size: {100 * d.detectable:.1f}" if d.detectable is not None else ""
    return f"{100 * d.value:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]{power}"


def summary(report: AuditReport, v: Verdict) -> list[str]:
    """The plain-language lines above the verdict table: what the figures rest on, and whether
    the first obfuscator beats, ties or loses against each baseline, with the numbers."""
    lines = []
    sizes = ", ".join(f"{p}: {d.identities} identities, {d.test_crops} test crops"
                      + (f" over {d.folds} folds" if d.folds > 1 else "")
                      for p, d in report.labels.identity.items())
    quick = " This is the quick audit (val+test footage only)." if report.cross_fit is None else ""
    lines.append(f"The identity figures rest on {sizes}.{quick}")
    for protocol, row in v.protocols.items():
        if row.boxes is not None and row.boxes_interval is not None:
            lo, hi = row.boxes_interval
            lines.append(f"{protocol}: the detector's boxes alone, with no pixels, reach identity "
                         f"{figure_label(v.headline_figure)} {100 * row.boxes:.1f}% "
                         f"[{100 * lo:.1f}, {100 * hi:.1f}] (chance {100 * row.chance:.1f}%). "
                         f"No transform that keeps the detector working can go below this floor; the original "
                         f"frames add {_points(row.original_boxes_difference)} to it.")
    floor = _attribute_floor(report)
    if floor is not None:
        joined = (" Every method's attribute worst case includes these geometry attackers, so none reads below it."
                  if report.config.get("fuse_boxes") else "")
        lines.append(f"attributes: the detector's boxes alone predict the attributes at mA {100 * floor.value:.1f}% "
                     f"[{100 * floor.interval[0]:.1f}, {100 * floor.interval[1]:.1f}] (majority per attribute "
                     f"{100 * report.chance.attributes.get('mA', 0.5):.1f}%): in a short clip an attribute can "
                     f"belong to a place as much as to a person.{joined}")
    if v.obfuscator is None:
        return lines
    name, figure = v.obfuscator, v.headline_figure
    matched = "at matched utility" if report.sweep else "at their paper strengths (utility not matched)"
    lines.append(f"{name} keeps {100 * (v.obfuscator_relative_ap or 0):.1f}% of the detector's person AP. "
                 f"Against each baseline {matched}, on worst-case identity {figure_label(figure)}, "
                 f"lower = more private:")
    for protocol, row in v.protocols.items():
        if row.obfuscator is None:
            continue
        if row.obfuscator.vs_boxes is not None:
            where = _AGAINST_FLOOR[row.obfuscator.vs_boxes]
            lines.append(f"{protocol}: {name} is {where} the boxes-only floor: "
                         f"{_points(row.obfuscator.boxes_difference)}.")
        for b, c in row.obfuscator.baselines.items():
            word = {"better": "beats", "worse": "loses to", TIE: "ties with"}[c.obfuscator_is]
            lines.append(f"{protocol}: {name} {word} {b} (rel. AP {100 * c.relative_ap:.1f}%): "
                         f"difference {_points(c.difference)}.")
    mine = v.attributes.obfuscator if v.attributes is not None else None
    if mine is not None and mine.vs_boxes is not None:
        where = _AGAINST_FLOOR[mine.vs_boxes]
        lines.append(f"attributes: {name}'s worst-case mA is {where} the attribute floor: "
                     f"{_points(mine.boxes_difference)}.")
    return lines


def verdict(report: AuditReport, figure: str = "top1") -> Verdict:
    """Per protocol: original vs chance; each obfuscator vs chance, the original and every baseline
    (at matched utility when swept) on the worst-case identity ``figure``, the same for attribute
    mA; and the obfuscators against each other. The top-level obfuscator fields describe the FIRST
    one (the one the baselines are calibrated to)."""
    names = list(report.obfuscators) or (["obfuscator"] if "obfuscator" in report.methods else [])
    each = {n: obfuscator_verdict(report, n, figure) for n in names}
    first = each[names[0]] if names else None
    out = Verdict(protocols={}, headline_figure=figure)
    for protocol in report.protocols:
        orig = report.identity("original", protocol, figure)
        chance = report.identity_chance(protocol, figure)
        row = out.protocols[protocol] = ProtocolSummary(
            chance=chance, original=orig.value, original_interval=orig.interval,
            original_vs_chance=above(orig, chance),
            obfuscator=first.protocols[protocol] if first is not None else None)
        if BOXES in report.methods:
            floor = report.identity(BOXES, protocol, figure)
            row.boxes, row.boxes_interval = floor.value, floor.interval
            row.original_vs_boxes, d = judge(orig, floor)
            row.original_boxes_difference = _rounded(d)
    if first is not None:
        original_ma = report.attributes("original")
        if first.attributes is not None and original_ma is not None:
            ma_floor = _attribute_floor(report)
            out.attributes = AttributeSummary(original_mA=original_ma.value, obfuscator=first.attributes,
                                              boxes_mA=ma_floor.value if ma_floor is not None else None,
                                              boxes_interval=ma_floor.interval if ma_floor is not None else None)
        out.obfuscator = names[0]
        out.obfuscator_relative_ap = first.relative_ap
        out.every_baseline_matched = bool(report.sweep) and all(
            (c := report.curves.get(b)) is not None and c.calibrated is not None and c.calibrated.matched
            for b in report.baselines)
    if len(names) > 1:
        out.obfuscators = each
        out.pairs = pairwise(report, figure)
        out.pairs_summary = multiplicity(out.pairs)
    out.summary = summary(report, out)
    return out

