"""Latency regressions between two runs, judged on their samples rather than one number against another.

``compare_latency`` takes the per-frame capture -> tracks ages of a baseline run and of a candidate run (what
``perception bench pipeline`` keeps in its result) and flags a regression when the candidate's median is more
than ``tolerance`` above the baseline's *and* a one-sided Mann-Whitney U test says the candidate's ages are larger
(p < ``alpha``). Both conditions: a 10 % shift in a noisy run is not a regression unless the samples show it, and
a significant 2 % shift is not one worth blocking on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LatencyComparison:
    metric: str
    baseline_p50_ms: float
    candidate_p50_ms: float
    ratio: float  # candidate median / baseline median
    p_value: float  # one-sided Mann-Whitney U: candidate stochastically larger
    regression: bool
    baseline_n: int
    candidate_n: int

    def describe(self) -> str:
        verdict = "REGRESSION" if self.regression else "no regression"
        return (f"{self.metric}: p50 {self.baseline_p50_ms:.1f} -> {self.candidate_p50_ms:.1f} ms "
                f"(x{self.ratio:.2f}, Mann-Whitney p = {self.p_value:.3g}, n = {self.baseline_n}/{self.candidate_n}): "
                f"{verdict}")


def compare_latency(baseline_ms, candidate_ms, metric: str = "capture_to_tracks", tolerance: float = 0.10,
                    alpha: float = 0.05) -> LatencyComparison:
    from scipy.stats import mannwhitneyu

    base = np.asarray(baseline_ms, dtype=np.float64)
    cand = np.asarray(candidate_ms, dtype=np.float64)
    if base.size < 2 or cand.size < 2:
        raise ValueError(f"{metric}: need at least 2 samples in each run (got {base.size} and {cand.size})")
    base_p50, cand_p50 = float(np.median(base)), float(np.median(cand))
    ratio = cand_p50 / base_p50 if base_p50 > 0 else float("inf")
    p_value = float(mannwhitneyu(cand, base, alternative="greater").pvalue)
    return LatencyComparison(metric, base_p50, cand_p50, ratio, p_value,
                             bool(ratio > 1.0 + tolerance and p_value < alpha), int(base.size), int(cand.size))
