"""Saved results of `perception eval` / `perception bench` runs, and the report built from them.

Every eval/bench run saves what it printed as its last-line JSON, with the
command line, the time, the machine and the package commit, to
``<results dir>/<command>-<stage>.json`` (the latest run, written atomically)
and appends it to ``history.jsonl``. ``build_report`` turns the latest runs into
a Markdown report: every stage's headline figures, the ratio to its peer
library where the run measured one, and the project's targets met or not.
Pure Python, no ROS.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import atomic_write_text

RESULTS_DIR_ENV = "PERCEPTION_RESULTS_DIR"
HISTORY = "history.jsonl"
RECORD_KEYS = ("key", "command", "exit_code", "finished_utc", "machine", "commit", "result")  # what save_result writes


def results_dir() -> Path:
    """``$PERCEPTION_RESULTS_DIR``, else ``runs/results`` under the working directory (as ultralytics' runs/)."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or Path.cwd() / "runs" / "results")


def _package_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def save_result(key: str, argv: list[str], result: dict, exit_code: int, directory: Path | None = None) -> Path:
    """Save one run's result as the latest for ``key`` (e.g. "eval-detection") and append it to the history."""
    directory = Path(directory or results_dir())
    record = {"key": key, "command": "perception " + " ".join(argv), "exit_code": int(exit_code),
              "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version()},
              "commit": _package_commit(), "result": result}
    text = json.dumps(record, sort_keys=True, default=float)
    path = atomic_write_text(directory / f"{key}.json", text + "\n")
    with open(directory / HISTORY, "a", encoding="utf-8") as history:
        history.write(text + "\n")
    return path


def figure_at(result: dict, path: tuple[str, ...]):
    """The number at ``path`` in a saved result; None where the path or a number is missing."""
    node = result
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


@dataclass
class Target:
    """A figure the project promises, as the issue states it."""

    key: str  # saved result, e.g. "eval-detection"
    path: tuple[str, ...]  # where the figure is in the result
    op: str  # ">=", ">" or "<="
    value: float
    label: str

    def read(self, result: dict):
        return figure_at(result, self.path)

    def met(self, figure: float) -> bool:
        return {">=": figure >= self.value, ">": figure > self.value, "<=": figure <= self.value}[self.op]


TARGETS = [
    Target("eval-detection", ("map50",), ">=", 0.90, "detection mAP@0.5, all classes"),
    Target("eval-detection", ("map50_95",), ">=", 0.65, "detection mAP@0.5:0.95, all classes"),
    Target("eval-detection", ("per_class", "car", "map50"), ">=", 0.90, "detection mAP@0.5, cars"),
    Target("eval-detection", ("per_class", "car", "map50_95"), ">=", 0.65, "detection mAP@0.5:0.95, cars"),
    Target("eval-detection", ("per_class", "person", "map50"), ">=", 0.90, "detection mAP@0.5, persons"),
    Target("eval-detection", ("per_class", "person", "map50_95"), ">=", 0.65, "detection mAP@0.5:0.95, persons"),
    Target("bench-detector", ("node_vs_raw_ratio",), ">=", 0.9, "detector node vs raw ultralytics"),
    Target("bench-detector", ("batched_vs_single_ratio",), ">", 1.0, "4 cameras batched vs 4 x single"),
    Target("eval-tracking-detector", ("hota_vs_best_peer",), ">=", 1.0,
           "tracking HOTA vs the best BoxMOT tracker (detector output)"),
    Target("eval-tracking-gt-noisy", ("hota_vs_best_peer",), ">=", 1.0,
           "tracking HOTA vs the best BoxMOT tracker (noisy ground truth)"),
    Target("eval-tracking-detector", ("idf1",), ">=", 0.80, "tracking IDF1 with detector output"),
    Target("bench-tracker", ("updates_per_s",), ">=", 1000, "tracker updates/s, 50 objects, one core"),
    Target("eval-drift", ("quiet", "false_flags"), "<=", 0, "drift flags in the reference conditions' runs"),
    Target("eval-drift", ("night", "flagged_at_s"), "<=", 60, "night scene: image drift flagged, s"),
    Target("eval-drift", ("bumped", "flagged_after_s"), "<=", 60, "camera knocked 1 degree: view drift flagged, s"),
    Target("eval-proxies", ("rank_correlation", "short_lived_ratio", "spearman"), ">=", 0.7,
           "FP proxy short-lived tracks vs true FP rate (Spearman)"),
    Target("eval-proxies", ("rank_correlation", "vanished_mid_view_ratio", "spearman"), ">=", 0.7,
           "FN proxy tracks vanishing mid-view vs true FN rate (Spearman)"),
    Target("eval-proxies", ("rank_correlation", "coasting_mid_view_ratio", "spearman"), ">=", 0.7,
           "FN proxy coasting mid-view vs true FN rate (Spearman)"),
    Target("eval-proxies", ("rank_correlation", "low_score_update_ratio", "spearman"), ">=", 0.7,
           "FN proxy confirmed tracks updated by low-score detections vs true FN rate (Spearman)"),
    Target("eval-proxies", ("rank_correlation", "cross_camera_miss_ratio", "spearman"), ">=", 0.7,
           "FN proxy cross-camera misses vs true FN rate (Spearman)"),
    Target("eval-proxies", ("rank_correlation", "shadow_disagreement", "spearman"), ">=", 0.7,
           "shadow disagreement vs true FN rate (Spearman)"),
    Target("bench-pipeline", ("monitor_cpu_share",), "<=", 0.03, "monitor + metrics endpoint, share of one core"),
]


def load_results(directory: Path | None = None) -> tuple[dict[str, dict], list[str]]:
    """Latest record per key, and a message for each file that could not be read (skipped, not fatal)."""
    directory = Path(directory or results_dir())
    if not directory.is_dir():
        raise ConfigError(f"no results in {directory}: run `perception eval ...` or `perception bench ...` first "
                          f"(or set {RESULTS_DIR_ENV})")
    records, problems = {}, []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("result"), dict):
                raise ValueError("not a saved result (no 'result' object)")
            missing = [k for k in RECORD_KEYS if k not in record]
            if missing:
                raise ValueError(f"not a saved result (missing {', '.join(missing)})")
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: skipped, unreadable ({exc})")
            continue
        records[record["key"]] = record
    return records, problems


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _scalars(result: dict) -> list[tuple[str, object]]:
    return [(k, v) for k, v in sorted(result.items()) if isinstance(v, (int, float, bool)) or v is None]


def build_report(records: dict[str, dict], problems: list[str] | None = None) -> tuple[str, dict]:
    """Markdown report of the latest runs, and its summary (targets met, missed, not measured)."""
    lines = ["# perception_nodes results", ""]
    summary = {"targets": [], "runs": sorted(records)}
    lines += ["## Targets", "", "| target | figure | goal | met | run |", "|---|---|---|---|---|"]
    for target in TARGETS:
        record = records.get(target.key)
        figure = target.read(record["result"]) if record else None
        met = None if figure is None else target.met(figure)
        where = "not run" if record is None else f"`{record['command']}` ({record['finished_utc']})"
        lines.append(f"| {target.label} | {_fmt(figure)} | {target.op} {target.value:g} | "
                     f"{'-' if met is None else ('yes' if met else '**no**')} | {where} |")
        summary["targets"].append({"label": target.label, "key": target.key, "figure": figure, "goal": target.value,
                                   "op": target.op, "met": met})
    for key in sorted(records):
        record = records[key]
        result = record["result"]
        lines += ["", f"## {key}", "", f"`{record['command']}`, exit code {record['exit_code']}, "
                  f"{record['finished_utc']}, {record['machine'].get('cpus')} CPUs, commit {record['commit']}", ""]
        lines += ["| figure | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in _scalars(result)]
        per_class = result.get("per_class")
        if isinstance(per_class, dict) and per_class:
            lines += ["", "| class | mAP@0.5 | mAP@0.5:0.95 |", "|---|---|---|"]
            lines += [f"| {name} | {_fmt(v.get('map50'))} | {_fmt(v.get('map50_95'))} |" for name, v in per_class.items()]
        scenes = result.get("scenes")
        if isinstance(scenes, dict) and scenes and all(isinstance(v, dict) and "map50" in v for v in scenes.values()):
            reference = (result.get("reference") or {}).get("scenes") or {}
            lines += ["", "| scene | mAP@0.5 | mAP@0.5:0.95 | reference mAP@0.5 | reference mAP@0.5:0.95 |",
                      "|---|---|---|---|---|"]
            lines += [f"| {name} | {_fmt(v['map50'])} | {_fmt(v.get('map50_95'))} | "
                      f"{_fmt(reference.get(name, {}).get('map50'))} | {_fmt(reference.get(name, {}).get('map50_95'))} |"
                      for name, v in scenes.items()]
            promotion = result.get("promotion")
            if isinstance(promotion, dict):
                lines += ["", f"Promotion rule: {'promote' if promotion.get('promote') else 'keep the reference'}"
                          + "".join(f"; {reason}" for reason in promotion.get("reasons", []))]
        peers = result.get("peers")
        if isinstance(peers, dict) and peers:
            columns = sorted({k for p in peers.values() for k, v in p.items() if isinstance(v, (int, float))})
            lines += ["", "| peer | " + " | ".join(columns) + " | ours / peer |", "|---" * (len(columns) + 2) + "|"]
            for name, peer in sorted(peers.items()):
                ratio = _ratio(result, peer)
                lines.append(f"| {name} | " + " | ".join(_fmt(peer.get(c)) for c in columns) + f" | {ratio} |")
    if problems:
        lines += ["", "## Skipped files", ""] + [f"- {p}" for p in problems]
    summary["met"] = sum(1 for t in summary["targets"] if t["met"] is True)
    summary["missed"] = sum(1 for t in summary["targets"] if t["met"] is False)
    summary["not_measured"] = sum(1 for t in summary["targets"] if t["met"] is None)
    summary["skipped_files"] = problems or []
    return "\n".join(lines) + "\n", summary


def _ratio(result: dict, peer: dict) -> str:
    """Ours over the peer on the stage's headline figure (HOTA for tracking, updates/s for speed)."""
    for key in ("hota", "updates_per_s"):
        if isinstance(result.get(key), (int, float)) and isinstance(peer.get(key), (int, float)) and peer[key]:
            return f"{result[key] / peer[key]:.2f} ({key})"
    return "-"
