"""`perception report --html`: one self-contained page (plots inlined as PNG) over the saved eval/bench results
and, where given, a run's timeline from the monitor.

Plots: latency per stage (``bench pipeline``), rates over time (a monitor timeline, else the history of
``bench pipeline`` runs), drift over time (``eval drift``'s conditions, or the timeline's drift values), accuracy
against the baselines each evaluation measured in the same run, and the safety suite's scenarios. A plot whose
data was never measured says which command measures it instead of being left out silently. The latency of the
latest ``bench pipeline`` run is compared with the one before it (``regression.compare_latency``).
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from perception_nodes.results import figure_at

PLOTS = ("latency", "rates", "drift", "accuracy", "safety")
_TITLES = {"latency": "Latency per stage", "rates": "Rates over time", "drift": "Drift over time",
           "accuracy": "Accuracy against baselines", "safety": "Safety scenarios"}
_HOW = {"latency": "perception bench pipeline", "rates": "perception demo (its timeline), or perception bench pipeline",
        "drift": "perception eval drift", "accuracy": "perception eval tracking / localization / retrieval / safety",
        "safety": "perception eval safety"}


def load_timeline(path: str | Path) -> list[dict]:
    """A monitor timeline (JSON lines); unreadable lines are skipped (a run killed mid-write leaves half a line)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "t_s" in row:
            rows.append(row)
    return rows


def load_history(directory: Path) -> list[dict]:
    path = Path(directory) / "history.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("result"), dict):
            out.append(record)
    return out


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(width=8.0, height=3.6, rows=1, cols=1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(width, height), squeeze=False)


def plot_latency(records: dict):
    record = records.get("bench-pipeline")
    cameras = (record or {}).get("result", {}).get("cameras") or {}
    if not cameras:
        return None
    fig, axes = _figure()
    ax = axes[0][0]
    stages = [("capture_to_image_ms", "capture->image"), ("capture_to_detections_ms", "->detections"),
              ("capture_to_tracks_ms", "->tracks")]
    names = sorted(cameras)
    width = 0.8 / len(stages)
    for i, (key, label) in enumerate(stages):
        p50 = [cameras[c].get(key, {}).get("p50") or 0 for c in names]
        p99 = [cameras[c].get(key, {}).get("p99") or 0 for c in names]
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, p50, width, label=f"{label} p50")
        ax.scatter(xs, p99, marker="_", s=200, color="black", zorder=3, label="p99" if i == 0 else None)
    ax.set_xticks([j + width for j in range(len(names))], names)
    ax.set_ylabel("age since capture, ms")
    ax.set_title(f"{record['command']} ({record['finished_utc']})", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def plot_rates(records: dict, history: list[dict], timeline: list[dict] | None):
    if timeline:
        topics = sorted({t for row in timeline for t in (row.get("rates_hz") or {})})
        if topics:
            fig, axes = _figure()
            ax = axes[0][0]
            t0 = timeline[0]["t_s"]
            for topic in topics:
                points = [(row["t_s"] - t0, row["rates_hz"][topic]) for row in timeline
                          if row.get("rates_hz", {}).get(topic) is not None]
                if points:
                    ax.plot(*zip(*points), label=topic, linewidth=1)
            ax.set_xlabel("s since the monitor started")
            ax.set_ylabel("rate, Hz")
            ax.set_title("rates measured by the monitor", fontsize=8)
            ax.legend(fontsize=6, ncol=3)
            return fig
    runs = [r for r in history if r.get("key") == "bench-pipeline"]
    if not runs:
        return None
    fig, axes = _figure()
    ax = axes[0][0]
    cameras = sorted({c for r in runs for c in (r["result"].get("cameras") or {})})
    for cam in cameras:
        ax.plot(range(len(runs)), [r["result"].get("cameras", {}).get(cam, {}).get("track_rate_hz") for r in runs],
                marker="o", label=cam)
    ax.set_xticks(range(len(runs)), [r["finished_utc"][5:16] for r in runs], rotation=30, fontsize=6)
    ax.set_ylabel("track rate per camera, Hz")
    ax.set_title("perception bench pipeline runs", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def plot_drift(records: dict, timeline: list[dict] | None):
    series = (records.get("eval-drift") or {}).get("result", {}).get("series") or {}
    panels = [(name, rows) for name, rows in sorted(series.items()) if rows]
    if timeline and any(row.get("drift") for row in timeline):
        t0 = timeline[0]["t_s"]
        panels.append(("this run", [{"t_s": row["t_s"] - t0, **row.get("drift", {})} for row in timeline]))
    if not panels:
        return None
    fig, axes = _figure(8.0, 3.2 * len(panels), rows=len(panels))
    for ax, (name, rows) in zip([a[0] for a in axes], panels):
        features = sorted({k for row in rows for k in row if k != "t_s"})
        for feature in features:
            points = [(row["t_s"], row[feature]) for row in rows if row.get(feature) is not None]
            if points:
                ax.plot(*zip(*points), label=feature, linewidth=1)
        ax.axhline(1.0, color="red", linestyle="--", linewidth=1, label="threshold")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("statistic / threshold")
        ax.set_xlabel("scene time, s")
        ax.set_title(name, fontsize=8)
        ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    return fig


# (saved result key, label, ours, baseline, higher is better): figures each evaluation measured in one run;
# baseline None: the best of the run's peers (tracking measures several BoxMOT trackers)
_ACCURACY = [
    ("eval-tracking-detector", "tracking HOTA vs best BoxMOT (detector)", ("hota",), None, True),
    ("eval-tracking-gt-noisy", "tracking HOTA vs best BoxMOT (noisy GT)", ("hota",), None, True),
    ("eval-localization", "localization HOTA vs nearest neighbour", ("hota",), ("baseline", "hota"), True),
    ("eval-localization", "localization IDF1 vs nearest neighbour", ("idf1",), ("baseline", "idf1"), True),
    ("eval-safety", "false alarms/h vs naive rules", ("false_alarms_per_hour",),
     ("baseline", "false_alarms_per_hour"), False),
    ("eval-drift", "drift false flags vs Evidently defaults", ("quiet", "false_flags"),
     ("baselines", "evidently_defaults", "quiet", "false_flags"), False),
]


def accuracy_pairs(records: dict) -> list[tuple[str, float, float, bool]]:
    out = []
    for key, label, ours, base, higher in _ACCURACY:
        result = (records.get(key) or {}).get("result")
        if result is None:
            continue
        if base is None:
            baseline = max((figure_at(p, ("hota",)) for p in (result.get("peers") or {}).values()
                            if figure_at(p, ("hota",)) is not None), default=None)
        else:
            baseline = figure_at(result, base)
        value = figure_at(result, ours)
        if value is not None and baseline is not None:
            out.append((label, float(value), float(baseline), higher))
    return out


def plot_accuracy(records: dict):
    pairs = accuracy_pairs(records)
    if not pairs:
        return None
    fig, axes = _figure(8.0, 0.5 + 0.45 * len(pairs) * 2)
    ax = axes[0][0]
    labels = [f"{label} ({'higher' if higher else 'lower'} is better)" for label, _, _, higher in pairs]
    ys = range(len(pairs))
    ax.barh([y + 0.2 for y in ys], [v for _, v, _, _ in pairs], 0.4, label="ours")
    ax.barh([y - 0.2 for y in ys], [b for _, _, b, _ in pairs], 0.4, label="baseline / peer")
    for y, (_, v, b, _) in zip(ys, pairs):
        ax.text(max(v, b), y, f"  {v:.3g} vs {b:.3g}", va="center", fontsize=7)
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.legend(fontsize=7)
    return fig


def plot_safety(records: dict):
    scenarios = (records.get("eval-safety") or {}).get("result", {}).get("scenarios") or {}
    if not scenarios:
        return None
    fig, axes = _figure(8.0, 0.6 + 0.3 * len(scenarios))
    ax = axes[0][0]
    names = sorted(scenarios)
    leads = [scenarios[n].get("lead_time_s") or 0.0 for n in names]
    colours = ["tab:green" if scenarios[n].get("pass") else "tab:red" for n in names]
    ax.barh(range(len(names)), leads, color=colours)
    ax.axvline(2.1, color="black", linestyle="--", linewidth=1, label="2.1 s (NHTSA FCW)")
    ax.set_yticks(range(len(names)), [f"{n} ({'pass' if scenarios[n].get('pass') else 'FAIL'})" for n in names],
                  fontsize=7)
    ax.set_xlabel("smallest hazard-to-alert lead time, s")
    ax.legend(fontsize=7)
    return fig


def latency_regression(history: list[dict]):
    """The latest bench-pipeline run against the one before it, when both kept their samples."""
    from perception_nodes.monitoring.regression import compare_latency

    runs = [r for r in history if r.get("key") == "bench-pipeline"
            and (r["result"].get("samples_ms") or {}).get("capture_to_tracks")]
    if len(runs) < 2:
        return None, runs
    baseline, candidate = runs[-2], runs[-1]
    return compare_latency(baseline["result"]["samples_ms"]["capture_to_tracks"],
                           candidate["result"]["samples_ms"]["capture_to_tracks"]), runs


def build_html(records: dict, history: list[dict], timeline: list[dict] | None = None,
               markdown_summary: dict | None = None) -> tuple[str, dict]:
    """The page and a summary: which plots have data ({name: bool}) and the latency verdict."""
    figures = {"latency": plot_latency(records), "rates": plot_rates(records, history, timeline),
               "drift": plot_drift(records, timeline), "accuracy": plot_accuracy(records),
               "safety": plot_safety(records)}
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>perception_nodes report</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "figure{margin:1.5em 0;border-top:1px solid #ccc;padding-top:.5em}img{max-width:100%}"
             "td,th{padding:2px 8px;border-bottom:1px solid #eee;font-size:13px}.missing{color:#a00}</style>",
             "</head><body><h1>perception_nodes report</h1>"]
    comparison, runs = latency_regression(history)
    if comparison is not None:
        parts.append(f"<p><b>Latency:</b> {html.escape(comparison.describe())} "
                     f"(baseline {html.escape(runs[-2]['finished_utc'])}, candidate "
                     f"{html.escape(runs[-1]['finished_utc'])})</p>")
    if markdown_summary and markdown_summary.get("targets"):
        parts.append("<h2>Targets</h2><table><tr><th>target</th><th>figure</th><th>goal</th><th>met</th></tr>")
        for t in markdown_summary["targets"]:
            met = "-" if t["met"] is None else ("yes" if t["met"] else "<b>no</b>")
            figure = "-" if t["figure"] is None else f"{t['figure']:.4g}"
            parts.append(f"<tr><td>{html.escape(t['label'])}</td><td>{figure}</td>"
                         f"<td>{html.escape(t['op'])} {t['goal']:g}</td><td>{met}</td></tr>")
        parts.append("</table>")
    for name in PLOTS:
        fig = figures[name]
        parts.append(f"<figure id='plot-{name}'><h2>{_TITLES[name]}</h2>")
        if fig is None:
            parts.append(f"<p class='missing'>Not measured yet: run <code>{html.escape(_HOW[name])}</code>.</p>")
        else:
            parts.append(f"<img class='plot' alt='{_TITLES[name]}' src='data:image/png;base64,{_png(fig)}'>")
        parts.append("</figure>")
    # Written into the DOM once the images have decoded, so a headless browser can say how many rendered.
    parts.append("<script>window.addEventListener('load',()=>{const ok=[...document.images].filter("
                 "i=>i.complete&&i.naturalWidth>0).length;document.body.setAttribute('data-plots-rendered',ok);"
                 "document.body.setAttribute('data-plots-total',document.images.length);});</script>")
    parts.append("</body></html>")
    summary = {"plots": {name: figures[name] is not None for name in PLOTS},
               "latency_regression": None if comparison is None else {
                   "ratio": round(comparison.ratio, 3), "p_value": comparison.p_value,
                   "regression": comparison.regression}}
    return "".join(parts), summary
