"""Per-topic rate, jitter and data age from header stamps, and frames lost between stages (pure Python).

A topic's *age* is receipt time - ``header.stamp``: for anything derived from an image the stamp is the
capture time, so the age at ``<cam>/tracks`` is the whole capture -> tracks latency. The rate and jitter come
from receipt times over a sliding window and are judged against the rate the site manifest expects, the way
greenwave_monitor judges a topic; the result is a diagnostic level (``Level``) with the reason.

``StageChain`` pairs one camera's frames across the per-camera stages by stamp (capture -> detections ->
tracks): a frame seen at one stage and not at the next within ``grace_s`` is a drop at that hand-over, counted
by the monitor itself rather than trusted from the nodes' own counters. The time between two stages of the
same frame is that stage's share of the latency.
"""
from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np


class Level(enum.IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


class Stage(str, enum.Enum):
    """Where along the pipeline a topic sits (the Prometheus ``stage`` label)."""

    CAPTURE = "capture"  # <cam>/camera_info: published with every image, stamp = capture time
    DETECTIONS = "detections"
    TRACKS = "tracks"
    OBJECTS = "objects"  # the localizer's fused objects; age from the newest image that observed them
    ASSESSMENT = "assessment"  # the risk node's assessments; age from the objects' fusion time


PER_CAMERA_CHAIN = (Stage.CAPTURE, Stage.DETECTIONS, Stage.TRACKS)
# Buckets of the data-age histograms, seconds: camera-rate pipelines live between 10 ms and a few seconds.
AGE_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class TopicSpec:
    """A topic the monitor watches."""

    topic: str
    stage: Stage
    camera: str = ""  # empty for site-wide topics
    expected_rate_hz: float | None = None  # None: no expectation, the rate is reported but not judged


@dataclass
class TopicThresholds:
    """When a topic's figures turn its level to WARN or ERROR."""

    window_s: float = 10.0  # rate, jitter and age percentiles over this much recent traffic
    rate_warn_ratio: float = 0.8  # below this share of the expected rate: WARN
    rate_error_ratio: float = 0.5  # below this share: ERROR
    jitter_warn_ratio: float = 0.5  # std of the inter-arrival time above this share of the expected period: WARN
    age_warn_s: float = 0.5  # data age p95 above this: WARN
    age_error_s: float = 2.0  # above this: ERROR
    stale_after_s: float = 3.0  # silent for this long (and for 5 expected periods): STALE

    def validate(self) -> None:
        from perception_nodes.errors import ConfigError

        if not 0 < self.rate_error_ratio <= self.rate_warn_ratio:
            raise ConfigError("need 0 < rate_error_ratio <= rate_warn_ratio")
        if not 0 < self.age_warn_s <= self.age_error_s:
            raise ConfigError("need 0 < age_warn_s <= age_error_s")
        if self.window_s <= 0 or self.stale_after_s <= 0 or self.jitter_warn_ratio <= 0:
            raise ConfigError("window_s, stale_after_s and jitter_warn_ratio must be positive")


@dataclass
class TopicSnapshot:
    """One topic's figures at one instant, with the level they earn."""

    spec: TopicSpec
    messages_total: int
    rate_hz: float | None
    jitter_s: float | None
    age_p50_s: float | None
    age_p95_s: float | None
    age_p99_s: float | None
    silent_s: float | None  # since the last message; None: never received
    level: Level = Level.OK
    message: str = ""


class TopicMonitor:
    """Receipt times and ages of one topic. ``on_message`` is cheap (a deque append and a bucket count)."""

    def __init__(self, spec: TopicSpec, thresholds: TopicThresholds | None = None):
        self.spec = spec
        self.thresholds = thresholds or TopicThresholds()
        self._receipts: deque[float] = deque()
        self._ages: deque[tuple[float, float]] = deque()  # (receipt, age)
        self.messages_total = 0
        self.negative_ages_total = 0  # stamps from the future: clock skew, or a bag loop jumping back
        self.age_bucket_counts = [0] * (len(AGE_BUCKETS_S) + 1)  # cumulative since start; last bucket: +Inf
        self.age_sum_s = 0.0
        self.age_count = 0
        self._last_receipt: float | None = None

    def on_message(self, receipt_s: float, stamp_s: float | None) -> None:
        """One message received at ``receipt_s`` carrying ``stamp_s`` (None: no meaningful stamp)."""
        self.messages_total += 1
        self._last_receipt = receipt_s
        self._receipts.append(receipt_s)
        if stamp_s is not None and math.isfinite(stamp_s) and stamp_s > 0:
            age = receipt_s - stamp_s
            if age < 0:
                self.negative_ages_total += 1
            else:
                self._ages.append((receipt_s, age))
                self.age_sum_s += age
                self.age_count += 1
                self.age_bucket_counts[_bucket(age)] += 1
        self._prune(receipt_s)

    def _prune(self, now_s: float) -> None:
        horizon = now_s - self.thresholds.window_s
        while self._receipts and self._receipts[0] < horizon:
            self._receipts.popleft()
        while self._ages and self._ages[0][0] < horizon:
            self._ages.popleft()

    def snapshot(self, now_s: float) -> TopicSnapshot:
        self._prune(now_s)
        receipts = np.fromiter(self._receipts, dtype=np.float64)
        rate = jitter = None
        if receipts.size >= 2 and receipts[-1] > receipts[0]:
            gaps = np.diff(receipts)
            rate = float((receipts.size - 1) / (receipts[-1] - receipts[0]))
            jitter = float(gaps.std())
        elif self._last_receipt is not None and receipts.size < 2:
            rate = 0.0 if now_s - self._last_receipt > self.thresholds.window_s else None
        ages = np.fromiter((a for _, a in self._ages), dtype=np.float64)
        p50 = p95 = p99 = None
        if ages.size:
            p50, p95, p99 = (float(v) for v in np.percentile(ages, [50, 95, 99]))
        silent = None if self._last_receipt is None else max(0.0, now_s - self._last_receipt)
        snap = TopicSnapshot(self.spec, self.messages_total, rate, jitter, p50, p95, p99, silent)
        snap.level, snap.message = judge(snap, self.thresholds)
        return snap


def _bucket(age_s: float) -> int:
    for index, bound in enumerate(AGE_BUCKETS_S):
        if age_s <= bound:
            return index
    return len(AGE_BUCKETS_S)


def judge(snap: TopicSnapshot, thresholds: TopicThresholds) -> tuple[Level, str]:
    """The level a topic's figures earn, and why (every reason, worst level wins)."""
    expected = snap.spec.expected_rate_hz
    stale_after = thresholds.stale_after_s
    if expected:
        stale_after = max(stale_after, 5.0 / expected)
    if snap.silent_s is None:
        return Level.STALE, "never received"
    if snap.silent_s > stale_after:
        return Level.STALE, f"silent for {snap.silent_s:.1f} s"
    level, reasons = Level.OK, []
    if expected and snap.rate_hz is not None:
        if snap.rate_hz < thresholds.rate_error_ratio * expected:
            level = max(level, Level.ERROR)
            reasons.append(f"rate {snap.rate_hz:.2f} Hz < {thresholds.rate_error_ratio:g} x {expected:g} Hz")
        elif snap.rate_hz < thresholds.rate_warn_ratio * expected:
            level = max(level, Level.WARN)
            reasons.append(f"rate {snap.rate_hz:.2f} Hz < {thresholds.rate_warn_ratio:g} x {expected:g} Hz")
        if snap.jitter_s is not None and snap.jitter_s > thresholds.jitter_warn_ratio / expected:
            level = max(level, Level.WARN)
            reasons.append(f"jitter {snap.jitter_s * 1000:.0f} ms > {thresholds.jitter_warn_ratio:g} period")
    if snap.age_p95_s is not None:
        if snap.age_p95_s > thresholds.age_error_s:
            level = max(level, Level.ERROR)
            reasons.append(f"age p95 {snap.age_p95_s * 1000:.0f} ms > {thresholds.age_error_s * 1000:.0f} ms")
        elif snap.age_p95_s > thresholds.age_warn_s:
            level = max(level, Level.WARN)
            reasons.append(f"age p95 {snap.age_p95_s * 1000:.0f} ms > {thresholds.age_warn_s * 1000:.0f} ms")
    return level, "; ".join(reasons)


@dataclass
class _Frame:
    first_seen_s: float
    ages: dict = field(default_factory=dict)  # stage -> age at that stage, s


class StageChain:
    """Frames of each camera paired across ``stages`` by stamp: drops per hand-over and time per stage."""

    def __init__(self, stages=PER_CAMERA_CHAIN, grace_s: float = 3.0, window: int = 512):
        self.stages = tuple(stages)
        self.grace_s = float(grace_s)
        self._pending: dict[str, dict[int, _Frame]] = {}
        # (camera, stage) -> frames that reached the stage before it but never this one
        self.drops_total: dict[tuple[str, Stage], int] = {}
        # (camera, stage) -> frames that reached this stage from the one before
        self.passed_total: dict[tuple[str, Stage], int] = {}
        self._stage_s: dict[Stage, deque[float]] = {s: deque(maxlen=window) for s in self.stages[1:]}

    def on_stage(self, camera: str, stage: Stage, stamp_ns: int, receipt_s: float, age_s: float) -> None:
        frames = self._pending.setdefault(camera, {})
        frame = frames.get(stamp_ns)
        if frame is None:
            frame = frames[stamp_ns] = _Frame(receipt_s)
        frame.ages[stage] = age_s
        index = self.stages.index(stage)
        if index > 0:
            previous = self.stages[index - 1]
            if previous in frame.ages:
                key = (camera, stage)
                self.passed_total[key] = self.passed_total.get(key, 0) + 1
                self._stage_s[stage].append(max(0.0, age_s - frame.ages[previous]))
        if stage == self.stages[-1]:
            del frames[stamp_ns]

    def expire(self, now_s: float) -> None:
        """Close frames older than the grace time: each stops at its last stage, a drop at the next."""
        for camera, frames in self._pending.items():
            done = [stamp for stamp, frame in frames.items() if now_s - frame.first_seen_s > self.grace_s]
            for stamp in done:
                frame = frames.pop(stamp)
                reached = [i for i, s in enumerate(self.stages) if s in frame.ages]
                last = max(reached)
                if last + 1 < len(self.stages):
                    key = (camera, self.stages[last + 1])
                    self.drops_total[key] = self.drops_total.get(key, 0) + 1

    def stage_time_p50_s(self, stage: Stage) -> float | None:
        """Median time a frame spends reaching ``stage`` from the stage before it (processing and transport)."""
        values = self._stage_s.get(stage)
        return float(np.median(np.fromiter(values, dtype=np.float64))) if values else None

    def drop_ratio(self, camera: str, stage: Stage) -> float | None:
        dropped = self.drops_total.get((camera, stage), 0)
        passed = self.passed_total.get((camera, stage), 0)
        return dropped / (dropped + passed) if dropped + passed else None


class ReceiptClock:
    """Puts the middleware's reception times (system clock) on the node's clock, which under ``use_sim_time`` is a
    bag replay's ``/clock``: a message received ``d`` seconds of system time before a poll was received ``d *
    rate`` seconds of node time before it, ``rate`` being how fast the node's clock ran over the last poll period
    (0 while a replay is paused, 2 at double speed). Without it every message of a poll period would carry the poll
    time as its receipt, up to a period late."""

    def __init__(self, smoothing: float = 0.5):
        self.rate = 1.0
        self._smoothing = float(smoothing)
        self._last: tuple[float, float] | None = None
        self._now: tuple[float, float] | None = None

    def update(self, system_now_s: float, clock_now_s: float) -> None:
        """Call once per poll, before mapping that poll's messages."""
        if self._last is not None:
            elapsed = system_now_s - self._last[0]
            if elapsed > 1e-3:
                measured = min(max((clock_now_s - self._last[1]) / elapsed, 0.0), 1000.0)
                # A clock that jumped back (a replay restarted) says nothing about its rate.
                if clock_now_s >= self._last[1]:
                    self.rate = self._smoothing * self.rate + (1.0 - self._smoothing) * measured
        self._last = self._now = (system_now_s, clock_now_s)

    def to_clock(self, received_system_s: float) -> float:
        """The node-clock time of a message received at ``received_system_s`` (never after the poll)."""
        if self._now is None:
            raise RuntimeError("ReceiptClock.update must run before to_clock")
        system_now, clock_now = self._now
        return clock_now - max(0.0, system_now - received_system_s) * self.rate
