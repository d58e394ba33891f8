"""The audit's self-contained HTML page: tables, privacy-utility scatter (inline SVG) and an
image grid of one frame under every method (base64 JPEG), rendered with jinja2 + matplotlib."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from veil.audit.report import BOXES, AuditReport, Difference, MethodResult, figure_label  # noqa: E402


def frame_grid_jpeg(frames: dict[str, torch.Tensor], columns: int = 4, width: float = 3.2) -> bytes:
    """JPEG of one frame under every method, titled with the method name (JPEG: noisy and
    obfuscated frames make a PNG grid megabytes large, and the report should stay mailable)."""
    n = max(len(frames), 1)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    first = next(iter(frames.values())) if frames else torch.zeros(3, 3, 4, dtype=torch.uint8)
    aspect = first.shape[-2] / first.shape[-1]
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, width * aspect * rows + 0.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, img) in zip(axes.ravel(), frames.items()):
        ax.imshow(img.permute(1, 2, 0).numpy())
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=80, pil_kwargs={"quality": 85})
    plt.close(fig)
    return buf.getvalue()


def _point(m: MethodResult, protocol: str, figure: str) -> tuple[float, float, float, float]:
    """(x, x_low, x_high, y): worst-case identity ``figure`` with its interval, and relative AP."""
    w = m.identity[protocol].figure(figure)
    return w.value, w.interval[0], w.interval[1], m.relative_ap


def _curves(report: AuditReport, protocol: str,
            figure: str) -> dict[str, list[tuple[float, float, float, float, str]]]:
    """Points per method: x = worst-case identity ``figure`` (with interval), y = relative AP."""
    methods = report.methods
    curves: dict[str, list] = {}
    for name, m in methods.items():
        if m.kind != "baseline":
            curves[name] = [(*_point(m, protocol, figure), "")]
    for name in report.baselines:
        curve = report.curves.get(name)
        if curve is not None and curve.points:
            curves[name] = [(*_point(methods[p.method], protocol, figure), f"{p.strength:.3g}")
                            for p in curve.points]
        elif name in methods:
            curves[name] = [(*_point(methods[name], protocol, figure), f"{methods[name].strength or 0:.3g}")]
    return curves


def privacy_utility_svg(report: AuditReport, protocol: str, figure: str) -> str:
    """Scatter in the style of wu-2018 Fig. 2: x worst-case attacker identity accuracy
    (A_b^N, lower = more private) with its 95% interval as error bars, y relative person AP."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = {"reference": "s", "obfuscator": "*", "reconstruction": "P", "floor": "X"}
    kinds = {name: m.kind for name, m in report.methods.items()}
    for name, pts in _curves(report, protocol, figure).items():
        xs, lo, hi, ys, labels = zip(*pts)
        err = [[x - low for x, low in zip(xs, lo)], [high - x for x, high in zip(xs, hi)]]
        ax.errorbar(xs, ys, xerr=err, marker=markers.get(kinds.get(name, ""), "o"),
                    markersize=12 if kinds.get(name) == "obfuscator" else 6,
                    linestyle="-" if len(pts) > 1 else "none", capsize=3, label=name)
        for x, y, lab in zip(xs, ys, labels):
            if lab and len(pts) > 1:
                ax.annotate(lab, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for c in report.curves.values():
        if c.calibrated is not None:
            x = report.identity(c.calibrated.method, protocol, figure).value
            ax.plot([x], [c.calibrated.relative_ap], marker="D", markerfacecolor="none", markeredgecolor="black",
                    linestyle="none")
    chance = report.identity_chance(protocol, figure)
    ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_xlabel(f"worst-case attacker identity {figure_label(figure)} (A_b^N, {protocol}, "
                  f"95% interval)  <- more private")
    ax.set_ylabel("relative person AP  (more useful ->)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Privacy-utility trade-off, {protocol} protocol (upper left is best)")
    fig.tight_layout()
    return _svg(fig)


def comparison_svg(report: AuditReport, figure: str) -> str:
    """The obfuscators side by side: x relative person AP, y worst-case identity ``figure`` (first
    protocol) with its interval as error bars; original frames and baselines (the matched ones
    when swept) as reference points, where audited."""
    protocol = report.protocols[0]
    fig, ax = plt.subplots(figsize=(7.5, 5))

    def point(name: str, m: MethodResult, **style) -> None:
        w = m.identity[protocol].figure(figure)
        err = [[w.value - w.interval[0]], [w.interval[1] - w.value]]
        ax.errorbar([m.relative_ap], [w.value], yerr=err, capsize=3, linestyle="none", label=name, **style)

    methods = report.methods
    point("original", methods["original"], marker="s", color="black")
    for name in report.baselines:
        method = report.matched(name)
        if method in methods:
            point(method, methods[method], marker="o", color="grey", alpha=0.6)
    for row in report.obfuscator_table:
        point(row.method, methods[row.method], marker="*", markersize=12)
        ax.annotate(row.method, (row.relative_ap, report.identity(row.method, protocol, figure).value), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    chance = report.identity_chance(protocol, figure)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
    if BOXES in methods:  # the floor: what the detector's boxes alone give away
        floor = methods[BOXES].identity[protocol].figure(figure).value
        ax.axhline(floor, color="tab:red", linestyle=":", linewidth=1,
                   label=f"{BOXES}, the detector's output ({floor:.2f})")
    ax.set_xlabel("relative person AP  (more useful ->)")
    ax.set_ylabel(f"worst-case identity {figure_label(figure)} ({protocol}, 95% interval)"
                  "  <- more private")
    ax.set_xlim(0, 1.1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Obfuscators compared (lower right is best)")
    fig.tight_layout()
    return _svg(fig)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.find("<svg"):]  # drop the XML prologue: the SVG is inlined in HTML


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Veil privacy audit</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.ok{color:#060}.bad{color:#a00}.tie{color:#865}
figure{margin:1em 0}img{max-width:100%}small{color:#666}
</style></head><body>
<h1>Veil privacy audit</h1>
<p>Dataset <code>{{ r.dataset }}</code>, preset <b>{{ r.preset }}</b>, {{ r.config.seeds }} seed(s),
attackers: {{ r.attackers|join(", ") }}. Every figure is the mean over seeds with its 95% interval
(cluster bootstrap over test identities or tracks, {{ r.config.bootstrap }} resamples); the worst case over
attackers is taken per seed. Person AP of the frozen detector on original test frames: {{ pct(r.person_ap_original) }}.</p>

<h2 id="verdict">Verdict</h2>
<ul id="summary">{% for line in v.summary %}<li>{{ line }}</li>{% endfor %}</ul>
<p>"better" / "worse" only where the 95% interval of the difference excludes 0 (paired bootstrap: both figures on the same resamples of test identities); otherwise "not distinguishable".
Each cell gives the paired difference (points) and, after "detectable", the smallest difference this audit could detect (two-sided 5%, 80% power). Identity figure: <b>{{ v.headline_figure }}</b>.</p>
<table id="verdict-table">
<tr><th class="l">protocol</th><th>chance</th><th>original</th><th class="l">original vs chance</th><th>boxes only (floor)</th>
{% if v.obfuscator %}<th>{{ v.obfuscator }}</th><th class="l">{{ v.obfuscator }} vs chance</th><th class="l">vs boxes only</th>{% for b in r.baselines %}<th class="l">vs {{ b }}</th>{% endfor %}{% endif %}</tr>
{% for p, e in v.protocols.items() %}<tr><td class="l">{{ p }}</td><td>{{ pct(e.chance) }}</td><td>{{ ci(e.original, e.original_interval) }}</td><td class="l">{{ e.original_vs_chance }}</td><td>{% if e.boxes is not none %}{{ ci(e.boxes, e.boxes_interval) }}{% else %}-{% endif %}</td>
{% if e.obfuscator %}<td>{{ ci(e.obfuscator.value, e.obfuscator.interval) }}</td><td class="l">{{ e.obfuscator.vs_chance }}</td>
<td class="l {{ cls(e.obfuscator.vs_boxes) }}">{{ e.obfuscator.vs_boxes or "-" }}{% if e.obfuscator.boxes_difference %}<br><small>{{ diff(e.obfuscator.boxes_difference) }}</small>{% endif %}</td>
{% for b, c in e.obfuscator.baselines.items() %}<td class="l {{ cls(c.obfuscator_is) }}">{{ c.obfuscator_is }} ({{ ci(c.identity, c.interval) }}){% if c.difference %}<br><small>{{ diff(c.difference) }}</small>{% endif %}</td>{% endfor %}{% endif %}</tr>{% endfor %}
{% if v.attributes %}{% set a = v.attributes.obfuscator %}<tr><td class="l">attributes (mA)</td><td>{{ pct(r.chance.attributes.mA) }}</td><td>{{ pct(v.attributes.original_mA) }}</td><td></td><td>{% if v.attributes.boxes_mA is not none %}{{ ci(v.attributes.boxes_mA, v.attributes.boxes_interval) }}{% else %}-{% endif %}</td>
<td>{{ ci(a.value, a.interval) }}</td><td></td><td class="l {{ cls(a.vs_boxes) }}">{{ a.vs_boxes or "-" }}{% if a.boxes_difference %}<br><small>{{ diff(a.boxes_difference) }}</small>{% endif %}</td>{% for b in r.baselines %}<td class="l {{ cls(a.baselines.get(b)) }}">{{ a.baselines.get(b, "-") }}{% if a.differences.get(b) %}<br><small>{{ diff(a.differences[b]) }}</small>{% endif %}</td>{% endfor %}</tr>{% endif %}
</table>
{% if v.obfuscator %}<p>Obfuscator relative AP {{ pct(v.obfuscator_relative_ap) }}.
{% if r.sweep %}Baselines are compared at matched utility; every baseline calibrated within {{ "%.0f"|format(100 * r.config.ap_tolerance) }} AP points of the obfuscator:
<b class="{{ 'ok' if v.every_baseline_matched else 'bad' }}">{{ "yes" if v.every_baseline_matched else "no (see the sweep table)" }}</b>.
{% else %}Baselines are at their paper strengths, utility not matched (run with --sweep to match).{% endif %}</p>{% endif %}
{% if r.cross_fit %}<p id="cross-fit">Cross-fitted over {{ r.cross_fit.folds }} folds (gap {{ num(r.cross_fit.gap_s) }} s): {{ r.cross_fit.note }}</p>{% endif %}
{% set o = r.methods.original.identity[r.protocols[0]] %}{% if o.figures %}<h3>Identity figures ({{ r.protocols[0] }}; worst case over attackers, 95% interval)</h3>
<table id="figures-table"><tr><th class="l">method</th>{% for f in o.figures %}<th>{{ f }}<br><small>chance {{ pct(o.chance.get(f)) }}</small></th>{% endfor %}</tr>
{% for name, m in r.methods.items() %}{% set t = m.identity[r.protocols[0]] %}<tr><td class="l">{{ name }}</td>{% for f in o.figures %}<td>{% if t.figures.get(f) %}{{ ci(t.figures[f].value, t.figures[f].interval) }}{% else %}-{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
{% if r.detectors %}<h3>Utility across detectors (relative person AP; pseudo-labels from each detector on the original frames)</h3>
<table id="detectors-table"><tr><th class="l">method</th>{% for d in r.detectors %}<th>{{ d }}</th>{% endfor %}<th>count MAE</th><th>IDF1</th><th>faces kept</th></tr>
{% for name, m in r.methods.items() %}{% if m.relative_ap_by_detector %}<tr><td class="l">{{ name }}</td>{% for d in r.detectors %}<td>{{ pct(m.relative_ap_by_detector.get(d)) }}</td>{% endfor %}
<td>{{ num(m.utility.get("count_mae")) }}</td><td>{{ pct(m.utility.get("idf1")) }}</td><td>{{ pct(m.utility.get("faces_kept")) }}</td></tr>{% endif %}{% endfor %}
</table>{% endif %}

{% if r.obfuscator_table %}<h2 id="obfuscators">Obfuscators compared</h2>
<p>Every obfuscator below was measured in this one run: the same frames, pseudo-labels, crops, attackers and seeds.
Latency: CPU, 1 thread, median per 640x480 frame, measured inside the audit on its machine (not a controlled benchmark:
see <code>veil bench edge</code>). MACs per 640x480 frame (ptflops).</p>
<table id="obfuscators-table"><tr><th class="l">obfuscator</th><th>rel. AP</th>
{% for p in r.protocols %}<th>identity A<sub>b</sub><sup>N</sup> ({{ p }})</th>{% endfor %}<th>mA (worst)</th><th>reconstruction SSIM</th>
<th>parameters</th><th>MMACs</th><th>latency (ms)</th><th class="l">architecture (arguments)</th><th class="l">training adversaries</th></tr>
{% for row in r.obfuscator_table %}<tr><td class="l">{{ row.method }}</td><td>{{ pct(row.relative_ap) }}</td>
{% for p in r.protocols %}<td>{{ ci(row.identity[p].value, row.identity[p].interval) }}</td>{% endfor %}
<td>{% if row.attributes_mA %}{{ ci(row.attributes_mA.value, row.attributes_mA.interval) }}{% else %}-{% endif %}</td>
<td>{{ num(row.reconstruction.ssim) }}</td><td>{{ row.parameters }}</td><td>{{ "%.1f"|format(row.macs / 1e6) }}</td><td>{{ num(row.latency_ms) }}</td>
<td class="l">{{ row.obfuscator or "-" }}{% if row.obfuscator_args %} <code>{{ row.obfuscator_args|tojson }}</code>{% endif %}</td>
<td class="l">{% if row.adversaries %}<code>{{ row.adversaries|tojson }}</code>{% else %}-{% endif %}</td></tr>{% endfor %}
</table>
{% if v.pairs %}<table id="pairs-table"><tr><th class="l">A</th><th class="l">B</th><th>rel. AP A - B</th>
{% for p in r.protocols %}<th class="l">A's identity ({{ p }}) is</th>{% endfor %}<th class="l">A's mA is</th></tr>
{% for c in v.pairs %}<tr><td class="l">{{ c.a }}</td><td class="l">{{ c.b }}</td><td>{{ "%+.1f"|format(100 * c.relative_ap_a_minus_b) }}</td>
{% for p in r.protocols %}<td class="l {{ cls(c.identity[p]) }}">{{ c.identity[p] }}{% if c.identity_difference and c.identity_difference[p] %} ({{ diff(c.identity_difference[p]) }}){% endif %}</td>{% endfor %}
<td class="l {{ cls(c.attributes) }}">{{ c.attributes or "-" }}{% if c.attributes_difference %} ({{ diff(c.attributes_difference) }}){% endif %}</td></tr>{% endfor %}
</table><p>"better" = more private, only where the 95% interval of the paired difference A - B (in brackets, points) excludes 0.
{% if v.pairs_summary %}{% set m = v.pairs_summary %}{{ m.distinguishable }} of these {{ m.comparisons }} comparisons are "better" or "worse"; each is at 95% on its own, so about {{ m.expected_by_chance }} would be by chance alone even if no two obfuscators differed.{% endif %}</p>{% endif %}
<figure id="obfuscators-plot">{{ comparison_svg|safe }}
<figcaption>x: person AP relative to original frames; y: worst-case identity {{ figure_label }} ({{ r.protocols[0] }} protocol) with its 95% interval.
Stars: obfuscators; squares: original frames; circles: baselines{{ " (matched to " ~ r.sweep_target ~ ")" if r.sweep_target else "" }}.</figcaption></figure>{% endif %}

<h2 id="plot">Privacy-utility</h2>
{% for p, svg in svgs.items() %}<figure id="privacy-utility-{{ p }}">{{ svg|safe }}
<figcaption>{{ p }} protocol. x: worst-case identity {{ figure_label }} over {{ r.attackers|length }} attackers (error bars: 95% interval);
y: person AP relative to original frames. Curves: baselines over strength (labels); diamonds: baselines calibrated to the obfuscator's utility.</figcaption></figure>{% endfor %}

<h2 id="methods">Methods</h2>
<table id="methods-table">
<tr><th class="l">method</th><th>strength</th><th>rel. AP</th><th>SSIM</th>
{% for p in r.protocols %}<th>identity A<sub>b</sub><sup>N</sup> ({{ p }})</th><th class="l">winner</th>{% endfor %}
<th>mA (worst)</th><th class="l">winner</th><th>inst. acc</th><th>inst. F1</th>{% if r.config.get("codec") %}<th>kB per frame ({{ r.config.codec }})</th>{% endif %}</tr>
{% for name, m in r.methods.items() %}<tr><td class="l">{{ name }}</td><td>{{ num(m.strength) }}</td><td>{{ pct(m.relative_ap) }}</td>
<td>{{ num(m.similarity_to_original.get("ssim")) }}</td>
{% for p in r.protocols %}{% set w = m.identity[p].worst_case %}<td>{{ ci(w.value, w.interval) }}</td><td class="l">{{ m.identity[p].winner }}</td>{% endfor %}
{% if m.attributes %}{% set a = m.attributes %}<td>{{ ci(a.worst_case.value, a.worst_case.interval) }}</td><td class="l">{{ a.winner }}</td>
<td>{{ pct(a.per_attacker[a.winner].instance_accuracy) }}</td><td>{{ pct(a.per_attacker[a.winner].instance_f1) }}</td>
{% else %}<td colspan="4">-</td>{% endif %}{% if r.config.get("codec") %}<td>{{ num(m.upload_bytes_per_frame / 1000 if m.upload_bytes_per_frame is not none else none) }}</td>{% endif %}</tr>{% endfor %}
</table>
{% if r.config.get("codec") %}<p>Every transformed frame was encoded as {{ r.config.codec }} and decoded as the cloud does before it was measured; the original frames were not (they are the reference), and their column is what a camera without Veil would upload.</p>{% endif %}

<h3>Seeds: worst case per seed (identity, {{ r.protocols[0] }})</h3>
<table id="seeds-table"><tr><th class="l">method</th><th class="l">per seed (winning attacker)</th><th>mean</th><th>std</th><th>max</th></tr>
{% for name, m in r.methods.items() %}{% set w = m.identity[r.protocols[0]].worst_case %}<tr><td class="l">{{ name }}</td>
<td class="l">{% for x in w.per_seed %}{{ pct(x) }} ({{ w.attackers[loop.index0] }}){% if not loop.last %}; {% endif %}{% endfor %}</td>
<td>{{ pct(w.value) }}</td><td>{{ pct(w.std) }}</td><td>{{ pct(w.max) }}</td></tr>{% endfor %}
</table>

{% for p in r.protocols %}<h3>Per attacker, {{ p }} protocol: identity top-1{{ " / attribute mA" if p == r.protocols[0] else "" }}</h3>
<table id="attackers-table-{{ p }}"><tr><th class="l">method</th>{% for a in r.attackers %}<th>{{ a }}</th>{% endfor %}</tr>
{% for name, m in r.methods.items() %}<tr><td class="l">{{ name }}</td>{% for a in r.attackers %}{% set s = m.identity[p].per_attacker.get(a) %}
<td>{% if s %}{{ ci(s.top1.value, s.top1.interval) }}{% if p == r.protocols[0] and m.attributes %} / {{ pct(m.attributes.per_attacker[a].mA.value) }}{% endif %}{% else %}-{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>{% endfor %}

<h3>Attacker training budgets</h3>
<table id="budgets-table"><tr><th class="l">attacker</th><th class="l">budget (identity, {{ r.protocols[0] }}, original frames, first seed)</th></tr>
{% for a in r.attackers %}<tr><td class="l">{{ a }}</td><td class="l"><code>{{ r.methods.original.identity[r.protocols[0]].per_attacker[a].budget|tojson }}</code></td></tr>{% endfor %}
</table>
<p>Crops are resized to {{ r.config.crop_size[0] }}x{{ r.config.crop_size[1] }} (w x h); augmentation <code>{{ r.config.augment }}</code>;
at most {{ r.config.epochs }} epochs{% if r.config.patience %}, early stopping after {{ r.config.patience }} epochs without a better validation score{% endif %}.</p>

{% if r.comparison %}<h2 id="comparison">Against cheaper presets (same crops, labels and seeds)</h2>
<table id="comparison-table"><tr><th class="l">preset</th><th class="l">method</th>{% for p in r.protocols %}<th>{{ p }}: cheaper / this</th>{% endfor %}<th>mA: cheaper / this</th></tr>
{% for other, c in r.comparison.items() %}{% for name, row in c.methods.items() %}<tr><td class="l">{{ other }}</td><td class="l">{{ name }}</td>
{% for p in r.protocols %}<td class="{{ 'ok' if row[p].at_least_as_high else 'bad' }}">{{ ci(row[p].worst_case.value, row[p].worst_case.interval) }} / {{ pct(row[p].this_preset) }}</td>{% endfor %}
{% if row.attributes %}<td class="{{ 'ok' if row.attributes.at_least_as_high else 'bad' }}">{{ pct(row.attributes.worst_case.value) }} / {{ pct(row.attributes.this_preset) }}</td>{% else %}<td>-</td>{% endif %}</tr>{% endfor %}{% endfor %}
</table>{% endif %}

{% if r.reconstruction %}<h2 id="reconstruction">Reconstruction attack</h2>
{% for name, o in r.obfuscators.items() %}
<p>A fresh U-Net trained {{ o.reconstruction.steps }} steps to invert {{ name }} on train frames:
test PSNR {{ num(o.reconstruction.test.psnr) }} dB, SSIM {{ num(o.reconstruction.test.ssim) }}.</p>{% endfor %}{% endif %}

{% if r.curves %}<h2 id="sweep">Baseline sweeps and calibration</h2>
<p>Utility is probed at every strength (detector only); the attackers run at the attacked points.
Each curve starts at its no-op strength, where the frames are the originals.</p>
<table id="sweep-table"><tr><th class="l">baseline</th><th class="l">stronger</th><th class="l">utility curve (strength: rel. AP)</th>
<th class="l">attacked points (strength: rel. AP, identity)</th>
<th>calibrated strength</th><th>rel. AP (target)</th><th>matched</th></tr>
{% for name, c in r.curves.items() %}<tr><td class="l">{{ name }}</td><td class="l">{{ c.stronger }}</td>
<td class="l">{% for p in c.utility %}{{ num(p.strength) }}: {{ pct(p.relative_ap) }}{% if not loop.last %}; {% endif %}{% endfor %}</td>
<td class="l">{% for p in c.points %}{{ num(p.strength) }}: {{ pct(p.relative_ap) }}, {{ pct(p.identity_worst_case) }}{% if not loop.last %}; {% endif %}{% endfor %}</td>
{% if c.calibrated %}<td>{{ num(c.calibrated.strength) }}</td><td>{{ pct(c.calibrated.relative_ap) }} ({{ pct(c.calibrated.target_relative_ap) }})</td>
<td class="{{ 'ok' if c.calibrated.matched else 'bad' }}">{{ "yes" if c.calibrated.matched else "no" }}</td>{% else %}<td colspan="3">-</td>{% endif %}</tr>{% endfor %}
</table>{% endif %}

<h2 id="labels">Sensitive labels</h2>
<table id="protocols-table"><tr><th class="l">identity protocol</th><th class="l">splits</th><th>time gap (s)</th><th>identities</th>
<th>train / val / test crops</th><th>smallest train-to-test gap (s)</th><th>chance (majority)</th></tr>
{% for p, d in r.labels.identity.items() %}<tr><td class="l">{{ p }}</td><td class="l">{{ d.splits|join("+") }}</td><td>{{ num(d.time_gap_s) }}</td>
<td>{{ d.identities }}</td><td>{{ d.train_crops }} / {{ d.val_crops }} / {{ d.test_crops }}</td><td>{{ num(d.min_train_to_test_gap_s) }}</td>
<td>{{ pct(d.chance.majority) }}</td></tr>{% endfor %}
</table>
<p>Attributes ({{ r.labels.attributes.source }}): {{ r.labels.attributes.train_crops }} train / {{ r.labels.attributes.val_crops }} val /
{{ r.labels.attributes.test_crops }} test crops; kept on the attacker-train labels alone; dropped as over 99% one value:
{{ r.labels.attributes.dropped_as_unbalanced|join(", ") or "none" }}.</p>
{% set leaks = [] %}{% for n, m in r.methods.items() %}{% if m.kind != "reconstruction" and m.attributes and m.attributes.per_attribute %}{% set _ = leaks.append(n) %}{% endif %}{% endfor %}
{% if leaks %}<p>Which attributes leak: each method's strongest attribute attacker, its balanced accuracy on each attribute
(chance 50 %; their mean is its mA).</p>{% endif %}
<table id="attributes-table"><tr><th class="l">attribute</th><th>positive rate (train)</th>{% for n in leaks %}<th>{{ n }}</th>{% endfor %}</tr>
{% for k, val in r.labels.attributes.positive_rate.items() %}<tr><td class="l">{{ k }}</td><td>{{ pct(val) }}</td>
{% for n in leaks %}{% set b = r.methods[n].attributes.per_attribute.get(k) %}<td>{{ pct(b) if b is not none else "-" }}</td>{% endfor %}</tr>{% endfor %}
</table>
<table id="chance-table"><tr><th class="l">attribute metric</th><th>chance</th></tr>
{% for k, val in r.chance.attributes.items() %}<tr><td class="l">{{ k }} (majority per attribute)</td><td>{{ pct(val) }}</td></tr>{% endfor %}
</table>

<h2 id="grid">One frame under every method</h2>
<figure id="frame-grid"><img alt="one test frame under every method" src="data:image/jpeg;base64,{{ grid_b64 }}"></figure>

<h2 id="times">Time per stage</h2>
<table id="times-table"><tr><th class="l">stage</th><th>seconds</th></tr>
{% for k, val in r.stage_seconds.items() %}<tr><td class="l">{{ k }}</td><td>{{ num(val) }}</td></tr>{% endfor %}
</table>
</body></html>
"""  # noqa: E501  (HTML rows read better unwrapped)


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.1f}%"


def _num(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{float(x):.3g}" if abs(float(x)) < 1000 else f"{float(x):.0f}"


def _ci(value, interval) -> str:
    """A figure with its interval: 59.4% [52.1, 66.0]."""
    if interval is None or any(x is None or math.isnan(x) for x in interval):
        return _pct(value)
    return f"{_pct(value)} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _diff(d: Difference) -> str:
    """A paired difference in points with what the audit could detect: -4.0 [-8.1, -0.3], detectable 3.1."""
    lo, hi = d.interval
    power = f", detectable {100 * d.detectable:.1f}" if d.detectable is not None else ""
    return f"{100 * d.value:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]{power}"


def _cls(outcome: str | None) -> str:
    return {"better": "ok", "worse": "bad"}.get(outcome or "", "tie")


def render_html(report: AuditReport, grid_jpeg: bytes) -> str:
    """The report page; everything inline, so the file can be mailed or archived alone."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(TEMPLATE)
    # the plots show the figure the verdict is read on (top-1 for a report without a verdict)
    figure = report.verdict.headline_figure if report.verdict is not None else "top1"
    svgs = {p: privacy_utility_svg(report, p, figure) for p in report.protocols}
    comparison = comparison_svg(report, figure) if report.obfuscator_table else ""
    return template.render(r=report, v=report.verdict, svgs=svgs, ci=_ci, cls=_cls, diff=_diff,
                           figure_label=figure_label(figure),
                           comparison_svg=comparison,
                           grid_b64=base64.b64encode(grid_jpeg).decode("ascii"), pct=_pct, num=_num)
