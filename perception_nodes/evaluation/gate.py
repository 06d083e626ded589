"""Ship/no-ship: the thresholds of a versioned file applied to a candidate's and a baseline's metrics (pure)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import read_yaml_mapping

LOWER_IS_BETTER = {"safety.missed", "safety.false_alarms_per_hour", "localization.position_p50_m",
                   "latency.risk_decision_ms_p99", "latency.localizer_ms_p99"}
_BOUNDS = ("max", "min", "max_drop", "max_rise", "max_ratio")


@dataclass(frozen=True)
class GateRule:
    metric: str
    bound: str
    value: float
    why: str = ""
    slack: float = 0.0   # max_ratio: the candidate may also exceed the baseline by this much in absolute terms


@dataclass(frozen=True)
class Thresholds:
    version: int
    rules: tuple[GateRule, ...]
    path: str = ""


def load_thresholds(path: str | Path) -> Thresholds:
    data = read_yaml_mapping(Path(path), "gate thresholds")
    problems, rules = [], []
    if not isinstance(data.get("version"), int):
        problems.append("version: give an integer version")
    for index, item in enumerate(data.get("rules") or []):
        bounds = [b for b in _BOUNDS if isinstance(item, dict) and b in item]
        if not isinstance(item, dict) or not isinstance(item.get("metric"), str) or len(bounds) != 1:
            problems.append(f"rules[{index}]: give a metric and exactly one of {list(_BOUNDS)}")
            continue
        value = item[bounds[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"rules[{index}] ({item['metric']}): {bounds[0]} must be a number")
            continue
        rules.append(GateRule(item["metric"], bounds[0], float(value), str(item.get("why", "")),
                              float(item.get("slack", 0.0))))
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return Thresholds(int(data["version"]), tuple(rules), str(path))


def judge(thresholds: Thresholds, candidate: dict, baseline: dict) -> dict:
    """Each metric (better / worse / same / not measured), each rule (pass / block) and the verdict."""
    metrics = []
    for name in sorted(set(candidate) | set(baseline)):
        c, b = candidate.get(name), baseline.get(name)
        if c is None or b is None:
            trend = "not measured"
        elif math.isclose(c, b, rel_tol=1e-9, abs_tol=1e-9):
            trend = "same"
        else:
            trend = "better" if (c < b) == (name in LOWER_IS_BETTER) else "worse"
        metrics.append({"metric": name, "baseline": b, "candidate": c, "trend": trend})
    checks = []
    for rule in thresholds.rules:
        c, b = candidate.get(rule.metric), baseline.get(rule.metric)
        if c is None or (rule.bound not in ("max", "min") and b is None):
            checks.append({"metric": rule.metric, "rule": f"{rule.bound} {rule.value:g}", "status": "skipped",
                           "why": rule.why, "detail": "not measured"})
            continue
        if rule.bound == "max":
            ok, limit = c <= rule.value, rule.value
        elif rule.bound == "min":
            ok, limit = c >= rule.value, rule.value
        elif rule.bound == "max_drop":
            limit = b - rule.value
            ok = c >= limit - 1e-12
        elif rule.bound == "max_rise":
            limit = b + rule.value
            ok = c <= limit + 1e-12
        else:
            limit = max(b * rule.value, b + rule.slack)
            ok = c <= limit + 1e-12
        checks.append({"metric": rule.metric, "rule": f"{rule.bound} {rule.value:g}", "limit": round(limit, 4),
                       "baseline": b, "candidate": c, "status": "pass" if ok else "block", "why": rule.why})
    blocking = [c for c in checks if c["status"] == "block"]
    return {"ship": not blocking, "thresholds_version": thresholds.version, "thresholds": thresholds.path,
            "metrics": metrics, "checks": checks, "blocking": [c["metric"] for c in blocking]}


def report_text(verdict: dict, candidate_name: str, baseline_name: str) -> str:
    """The verdict for a person: what got better, what got worse, which rule blocks."""
    lines = [f"gate: candidate {candidate_name} vs baseline {baseline_name} (thresholds v{verdict['thresholds_version']}"
             f", {verdict['thresholds']})", ""]
    for trend in ("better", "worse", "same", "not measured"):
        rows = [m for m in verdict["metrics"] if m["trend"] == trend]
        if rows:
            lines.append(f"{trend}:")
            lines += [f"  {m['metric']}: {m['baseline']} -> {m['candidate']}" for m in rows]
    lines.append("")
    for check in verdict["checks"]:
        mark = {"pass": "ok   ", "block": "BLOCK", "skipped": "skip "}[check["status"]]
        limit = f" (limit {check['limit']})" if "limit" in check else ""
        lines.append(f"  {mark} {check['metric']} {check['rule']}{limit}: {check['why']}")
    lines.append("")
    lines.append("SHIP" if verdict["ship"] else f"NO-SHIP: blocked by {', '.join(verdict['blocking'])}")
    return "\n".join(lines)
