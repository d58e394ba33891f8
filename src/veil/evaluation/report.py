"""The audit's self-contained HTML report: tables, privacy-utility scatter (inline SVG) and an
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


def _curves(report: dict) -> dict[str, list[tuple[float, float, str]]]:
    """(x = worst-case identity top-1, y = relative AP, label) points per method."""
    methods = report["methods"]
    curves: dict[str, list[tuple[float, float, str]]] = {}
    for name, m in methods.items():
        if m["kind"] != "baseline":
            curves[name] = [(m["identity"]["worst_case"], m["relative_ap"], "")]
    for name in report.get("baselines", {}):
        pts = report.get("curves", {}).get(name, {}).get("points")
        if pts:
            curves[name] = [(p["identity_worst_case"], p["relative_ap"], f"{p['strength']:.3g}") for p in pts]
        else:
            m = methods[name]
            curves[name] = [(m["identity"]["worst_case"], m["relative_ap"], f"{m['strength']:.3g}")]
    return curves


def privacy_utility_svg(report: dict) -> str:
    """Scatter in the style of wu-2018 Fig. 2: x worst-case attacker identity accuracy
    (A_b^N, lower = more private), y relative person AP (higher = more useful)."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = {"original": "s", "obfuscator": "*", "reconstruction": "P"}
    for name, pts in _curves(report).items():
        xs, ys, labels = zip(*pts)
        ax.plot(xs, ys, marker=markers.get(name, "o"), markersize=12 if name == "obfuscator" else 6,
                linestyle="-" if len(pts) > 1 else "none", label=name)
        for x, y, lab in pts:
            if lab and len(pts) > 1:
                ax.annotate(lab, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for cal in (c.get("calibrated") for c in report.get("curves", {}).values()):
        if cal:
            ax.plot([cal["identity_worst_case"]], [cal["relative_ap"]], marker="D", markerfacecolor="none",
                    markeredgecolor="black", linestyle="none")
    chance = report["chance"]["identity_top1"]
    ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_xlabel("worst-case attacker identity top-1 (A_b^N)  <- more private")
    ax.set_ylabel("relative person AP  (more useful ->)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Privacy-utility trade-off (upper left is best)")
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.find("<svg"):]  # drop the XML prologue: the SVG is inlined in HTML


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Veil privacy audit</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.ok{color:#060}.bad{color:#a00}
figure{margin:1em 0}img{max-width:100%}
</style></head><body>
<h1>Veil privacy audit</h1>
<p>Dataset <code>{{ r.dataset }}</code>, preset <b>{{ r.preset }}</b>, attackers: {{ r.attackers|join(", ") }}.
Person AP of the frozen detector on original test frames: {{ pct(r.person_ap_original) }}.</p>

<h2 id="verdict">Verdict</h2>
<table id="verdict-table">
<tr><th class="l">figure</th><th>value</th></tr>
<tr><td class="l">identity top-1 on original crops (worst case) vs chance</td>
<td>{{ pct(v.original_identity_worst_case) }} vs {{ pct(v.identity_chance) }}</td></tr>
{% if v.obfuscator_identity_worst_case is defined %}
<tr><td class="l">obfuscator worst-case identity top-1 / relative AP</td>
<td>{{ pct(v.obfuscator_identity_worst_case) }} / {{ pct(v.obfuscator_relative_ap) }}</td></tr>
<tr><td class="l">lower than every classic baseline{{ " (at matched utility)" if r.sweep else " (paper strengths, utility not matched)" }}</td>
<td class="{{ 'ok' if v.obfuscator_beats_every_baseline else 'bad' }}">{{ "yes" if v.obfuscator_beats_every_baseline else "no" }}</td></tr>
{% if r.sweep %}<tr><td class="l">every baseline calibrated within {{ "%.0f"|format(100 * r.config.ap_tolerance) }} AP points of the obfuscator</td>
<td class="{{ 'ok' if v.every_baseline_matched else 'bad' }}">{{ "yes" if v.every_baseline_matched else "no (see the sweep table)" }}</td></tr>{% endif %}
{% endif %}
</table>

<h2 id="plot">Privacy-utility</h2>
<figure id="privacy-utility">{{ svg|safe }}
<figcaption>x: worst-case identity top-1 over {{ r.attackers|length }} attackers; y: person AP relative to original frames.
Curves: baselines over strength (labels); diamonds: baselines calibrated to the obfuscator's utility.</figcaption></figure>

<h2 id="chance">Chance levels</h2>
<table id="chance-table"><tr><th class="l">metric</th><th>chance</th></tr>
<tr><td class="l">identity top-1 (majority identity)</td><td>{{ pct(r.chance.identity_top1) }}</td></tr>
<tr><td class="l">identity top-1 (uniform)</td><td>{{ pct(r.chance.identity_uniform) }}</td></tr>
{% for k, val in r.chance.attributes.items() %}<tr><td class="l">attributes {{ k }} (majority per attribute)</td><td>{{ pct(val) }}</td></tr>{% endfor %}
</table>

<h2 id="methods">Methods</h2>
<table id="methods-table">
<tr><th class="l">method</th><th>strength</th><th>rel. AP</th><th>SSIM</th><th>identity top-1 A<sub>b</sub><sup>N</sup></th>
<th>worst identity attacker</th><th>mA (worst)</th><th>inst. acc</th><th>inst. prec</th><th>inst. rec</th><th>inst. F1</th></tr>
{% for name, m in r.methods.items() %}<tr><td class="l">{{ name }}</td><td>{{ num(m.strength) }}</td><td>{{ pct(m.relative_ap) }}</td>
<td>{{ num(m.similarity_to_original.ssim) }}</td><td>{{ pct(m.identity.worst_case) }}</td><td class="l">{{ m.identity.worst_attacker }}</td>
{% if m.attributes is defined %}{% set w = m.attributes.worst_case %}<td>{{ pct(w.mA) }}</td><td>{{ pct(w.instance_accuracy) }}</td>
<td>{{ pct(w.instance_precision) }}</td><td>{{ pct(w.instance_recall) }}</td><td>{{ pct(w.instance_f1) }}</td>
{% else %}<td colspan="5">-</td>{% endif %}</tr>{% endfor %}
</table>

<h3>Per attacker: identity top-1 / attribute mA</h3>
<table id="attackers-table"><tr><th class="l">method</th>{% for a in r.attackers %}<th>{{ a }}</th>{% endfor %}</tr>
{% for name, m in r.methods.items() %}<tr><td class="l">{{ name }}</td>{% for a in r.attackers %}
<td>{{ pct(m.identity.per_attacker[a]) }}{% if m.attributes is defined %} / {{ pct(m.attributes.per_attacker[a].mA) }}{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>

{% if r.reconstruction %}<h2 id="reconstruction">Reconstruction attack</h2>
<p>A fresh U-Net trained {{ r.reconstruction.steps }} steps to invert the obfuscator on train frames:
test PSNR {{ num(r.reconstruction.test.psnr) }} dB, SSIM {{ num(r.reconstruction.test.ssim) }}.</p>{% endif %}

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
<p>Identities: {{ r.labels.identity.identities }} ByteTrack pseudo-identities on the {{ r.labels.identity.split }} split,
{{ r.labels.identity.train_crops }} attacker-train / {{ r.labels.identity.test_crops }} attacker-test crops (split by time).
Attributes ({{ r.labels.attributes.source }}): {{ r.labels.attributes.train_crops }} train / {{ r.labels.attributes.test_crops }} test crops.</p>
<table id="attributes-table"><tr><th class="l">attribute</th><th>positive rate (train)</th></tr>
{% for k, val in r.labels.attributes.positive_rate.items() %}<tr><td class="l">{{ k }}</td><td>{{ pct(val) }}</td></tr>{% endfor %}
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


def render_html(report: dict, grid_jpeg: bytes) -> str:
    """The report page; everything inline, so the file can be mailed or archived alone."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(TEMPLATE)
    return template.render(r=report, v=report.get("verdict", {}), svg=privacy_utility_svg(report),
                           grid_b64=base64.b64encode(grid_jpeg).decode("ascii"), pct=_pct, num=_num)
