"""The promotion rule for a new detector version, the evaluation goals, and the promotion itself.

A candidate becomes the default only if, on every evaluation scene, it is at least as good as the current
model within the evaluation set's tolerance (mAP@0.5 and mAP@0.5:0.95 each), and better overall (the mean
mAP@0.5:0.95 over the scenes). Both models are scored on the same frames in the same run.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from perception_nodes.errors import ConfigError

GOAL_CLASSES = ("car", "person")   # the classes the goals hold within class_gap of their scene's overall figure


@dataclass(frozen=True)
class SceneVerdict:
    scene: str
    delta_map50: float
    delta_map50_95: float
    within_tolerance: bool


def overall(scenes: dict) -> dict:
    """Mean mAP@0.5 and mAP@0.5:0.95 over the scenes (each scene weighs the same)."""
    if not scenes:
        return {"map50": 0.0, "map50_95": 0.0}
    return {"map50": sum(r["map50"] for r in scenes.values()) / len(scenes),
            "map50_95": sum(r["map50_95"] for r in scenes.values()) / len(scenes)}


def promotion_decision(candidate: dict, current: dict, tolerance: float) -> dict:
    """Whether ``candidate`` (per-scene results) may replace ``current``; the reasons either way."""
    missing = sorted(set(current) - set(candidate))
    if missing:
        raise ConfigError(f"the candidate was not evaluated on {missing}; the rule needs every scene")
    verdicts = []
    for name, ref in current.items():
        # Judged on the change as printed (3 decimals), so a -0.010 shown is not refused as -0.0100001.
        d50 = round(candidate[name]["map50"] - ref["map50"], 3)
        d5095 = round(candidate[name]["map50_95"] - ref["map50_95"], 3)
        verdicts.append(SceneVerdict(name, d50, d5095, d50 >= -tolerance and d5095 >= -tolerance))
    cand_all = overall({k: candidate[k] for k in current})
    cur_all = overall(current)
    better = cand_all["map50_95"] > cur_all["map50_95"]
    worse = [v.scene for v in verdicts if not v.within_tolerance]
    reasons = [f"{v.scene}: {v.delta_map50:+.3f} / {v.delta_map50_95:+.3f} is below -{tolerance}"
               for v in verdicts if not v.within_tolerance]
    if not better:
        reasons.append(f"overall mAP@0.5:0.95 {cand_all['map50_95']:.3f} is not above {cur_all['map50_95']:.3f}")
    return {"promote": not worse and better, "tolerance": tolerance, "reasons": reasons,
            "worse_scenes": worse, "overall": {"candidate": cand_all, "current": cur_all},
            "scenes": {v.scene: asdict(v) for v in verdicts}}


def goal_check(scenes: dict, eval_set) -> dict:
    """Per scene: its group's goal figures met, and cars and persons within ``class_gap`` of the overall."""
    out = {}
    for name, result in scenes.items():
        spec = eval_set.scene(name)
        gaps = {c: round(result["per_class"][c]["map50"] - result["map50"], 4)
                for c in GOAL_CLASSES if c in result.get("per_class", {})}
        out[name] = {"goal": [spec.goal_map50, spec.goal_map50_95],
                     "map_met": result["map50"] >= spec.goal_map50 and result["map50_95"] >= spec.goal_map50_95,
                     "class_gaps": gaps,
                     "classes_met": all(abs(g) <= eval_set.class_gap for g in gaps.values())}
    return out


_DETECTOR_BLOCK = re.compile(r"^/\*\*/detector:\s*$")


def promote_in_config(config_path: str | Path, model_ref: str, fallback_ref: str) -> None:
    """Point the detector's ``model`` and ``fallback_model`` in a parameters file at the promoted model, keeping
    every other line and comment; atomic."""
    from perception_nodes.fileio import atomic_write_text

    path = Path(config_path)
    lines = path.read_text().splitlines(keepends=True)
    inside, replaced = False, set()
    for i, line in enumerate(lines):
        if _DETECTOR_BLOCK.match(line):
            inside = True
            continue
        if inside and line and not line[0].isspace() and not line.startswith("#"):
            break
        if inside:
            for key, ref in (("model", model_ref), ("fallback_model", fallback_ref)):
                match = re.match(rf"^(\s+{key}:\s*)(\S+)(.*)$", line.rstrip("\n"))
                if match:
                    lines[i] = f"{match.group(1)}{ref}{match.group(3)}\n"
                    replaced.add(key)
    if replaced != {"model", "fallback_model"}:
        raise ConfigError(f"{path}: no detector 'model' and 'fallback_model' lines to update")
    atomic_write_text(path, "".join(lines))
