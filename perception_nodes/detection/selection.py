"""Which registered runtime variant a site should run: the fastest one that keeps the FP32 model's accuracy.

A variant (OpenVINO FP32/BF16/INT8, ONNX Runtime, torch) qualifies when its held-out mAP@0.5 and mAP@0.5:0.95
are each within ``tolerance`` of the reference FP32 model's on the same seeds, overall and for every class in
``classes`` (cars and persons by default: what the site's decisions lean on). Among those, the fastest wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TOLERANCE = 0.005
CHECKED_CLASSES = ("car", "person")
METRICS = ("map50", "map50_95")


@dataclass
class Variant:
    ref: str
    metrics: dict  # {"map50", "map50_95", "per_class": {name: {"map50", "map50_95"}}}
    frames_per_s: float = 0.0
    violations: list[str] = field(default_factory=list)


def accuracy_violations(metrics: dict, reference: dict, tolerance: float = DEFAULT_TOLERANCE,
                        classes: tuple[str, ...] = CHECKED_CLASSES) -> list[str]:
    """Every figure where ``metrics`` falls more than ``tolerance`` below ``reference`` (or is missing)."""
    problems = []
    scopes = [("overall", metrics, reference)] + [
        (name, (metrics.get("per_class") or {}).get(name), (reference.get("per_class") or {}).get(name))
        for name in classes]
    for scope, ours, theirs in scopes:
        if theirs is None:
            continue
        if ours is None:
            problems.append(f"{scope}: no figures measured")
            continue
        for key in METRICS:
            if key not in ours:
                problems.append(f"{scope} {key}: not measured")
            elif ours[key] < theirs[key] - tolerance:
                problems.append(f"{scope} {key} {ours[key]:.3f} < {theirs[key]:.3f} - {tolerance}")
    return problems


def worst_drop(metrics: dict, reference: dict, classes: tuple[str, ...] = CHECKED_CLASSES) -> float:
    """The largest fall below ``reference`` among the figures ``accuracy_violations`` checks (negative when
    every figure is better); a figure missing from ``metrics`` counts as a fall of 1."""
    drops = []
    for scope in ("overall",) + tuple(classes):
        theirs = reference if scope == "overall" else (reference.get("per_class") or {}).get(scope)
        ours = metrics if scope == "overall" else (metrics.get("per_class") or {}).get(scope)
        if theirs is None:
            continue
        drops += [theirs[key] - (ours or {}).get(key, theirs[key] - 1.0) for key in METRICS]
    return max(drops) if drops else 0.0


def choose_default(reference: Variant, variants: list[Variant], tolerance: float = DEFAULT_TOLERANCE) -> Variant:
    """The fastest of ``variants`` (the reference included) within ``tolerance`` of the reference's accuracy;
    each variant's ``violations`` are filled in, so a report can say why one was not chosen."""
    candidates = []
    for variant in [reference, *variants]:
        variant.violations = accuracy_violations(variant.metrics, reference.metrics, tolerance)
        if not variant.violations:
            candidates.append(variant)
    return max(candidates, key=lambda v: v.frames_per_s)
