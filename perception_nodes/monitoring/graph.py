"""The whole graph as the monitor sees it (pure Python): topics along the pipeline, nodes' own health reports,
frames lost between stages, the running models and the detector's drift verdicts, turned into diagnostic
entries (``diagnostics``) and read by the Prometheus exporter (``metrics``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception_nodes.monitoring.topics import (PER_CAMERA_CHAIN, Level, Stage, StageChain, TopicMonitor, TopicSnapshot,
                                                TopicSpec, TopicThresholds)

DRIFT_PREFIX = "drift."  # NodeHealth value names "drift.<feature>" carry a drift statistic...
DRIFT_THRESHOLD_PREFIX = "drift_threshold."  # ...and "drift_threshold.<feature>" its threshold


@dataclass
class NodeReport:
    """One NodeHealth report, as plain data."""

    name: str
    level: int  # NodeHealth level: 0 OK, 1 WARN, 2 ERROR
    message: str
    received: int
    processed: int
    dropped: int
    errors: int
    processing_ms: tuple[float, float, float]  # p50, p95, p99
    output_rate_hz: float
    counters: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    received_at_s: float = 0.0

    def drift(self) -> dict[str, tuple[float, float]]:
        """feature -> (statistic, threshold) from the report's values."""
        out = {}
        for name, value in self.values.items():
            if name.startswith(DRIFT_PREFIX):
                feature = name[len(DRIFT_PREFIX):]
                threshold = self.values.get(DRIFT_THRESHOLD_PREFIX + feature)
                if threshold is not None:
                    out[feature] = (float(value), float(threshold))
        return out


@dataclass
class DiagnosticEntry:
    """One diagnostic_msgs/DiagnosticStatus."""

    name: str
    hardware_id: str
    level: Level
    message: str
    values: list[tuple[str, str]]


@dataclass
class GraphSnapshot:
    at_s: float
    topics: list[TopicSnapshot]
    nodes: list[tuple[NodeReport, Level, str]]
    drops_total: dict[tuple[str, Stage], int]
    passed_total: dict[tuple[str, Stage], int]
    stage_time_p50_s: dict[Stage, float | None]
    models: dict[str, str]  # topic -> model that produced its latest message
    age_histograms: dict[tuple[Stage, str], tuple[list[int], float, int]]  # (stage, camera) -> buckets, sum, count


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


class GraphMonitor:
    """Everything the monitor node feeds in and reads out; call from one thread (the node holds a lock)."""

    def __init__(self, topics: list[TopicSpec], thresholds: TopicThresholds | None = None,
                 stale_after_s: float = 3.0, chain_grace_s: float = 3.0):
        self.thresholds = thresholds or TopicThresholds()
        self.thresholds.validate()
        self.stale_after_s = stale_after_s
        self.topics = {spec.topic: TopicMonitor(spec, self.thresholds) for spec in topics}
        self.chain = StageChain(PER_CAMERA_CHAIN, grace_s=chain_grace_s)
        self.nodes: dict[str, NodeReport] = {}
        self.models: dict[str, str] = {}
        self._reported_drops: dict[tuple[str, Stage], int] = {}

    def on_message(self, topic: str, receipt_s: float, stamp_ns: int | None, model: str = "") -> None:
        monitor = self.topics.get(topic)
        if monitor is None:
            return
        stamp_s = stamp_ns / 1e9 if stamp_ns else None
        monitor.on_message(receipt_s, stamp_s)
        spec = monitor.spec
        if model:
            self.models[topic] = model
        if spec.camera and spec.stage in PER_CAMERA_CHAIN and stamp_ns:
            self.chain.on_stage(spec.camera, spec.stage, int(stamp_ns), receipt_s, receipt_s - stamp_s)

    def on_health(self, report: NodeReport) -> None:
        self.nodes[report.name] = report

    def node_level(self, report: NodeReport, now_s: float) -> tuple[Level, str]:
        if now_s - report.received_at_s > self.stale_after_s:
            return Level.STALE, f"no report for {now_s - report.received_at_s:.1f} s"
        return Level(min(int(report.level), int(Level.ERROR))), report.message or "ok"

    def snapshot(self, now_s: float) -> GraphSnapshot:
        self.chain.expire(now_s)
        topics = [m.snapshot(now_s) for m in self.topics.values()]
        nodes = [(r, *self.node_level(r, now_s)) for _, r in sorted(self.nodes.items())]
        histograms = {}
        for m in self.topics.values():
            key = (m.spec.stage, m.spec.camera)
            buckets, total, count = histograms.get(key, ([0] * len(m.age_bucket_counts), 0.0, 0))
            histograms[key] = ([a + b for a, b in zip(buckets, m.age_bucket_counts)], total + m.age_sum_s,
                               count + m.age_count)
        return GraphSnapshot(now_s, topics, nodes, dict(self.chain.drops_total), dict(self.chain.passed_total),
                             {s: self.chain.stage_time_p50_s(s) for s in PER_CAMERA_CHAIN[1:]}, dict(self.models),
                             histograms)

    def diagnostics(self, snap: GraphSnapshot) -> list[DiagnosticEntry]:
        """One entry per node, per watched topic, and one for the pipeline's hand-overs."""
        out = []
        for report, level, message in snap.nodes:
            values = [("received", str(report.received)), ("processed", str(report.processed)),
                      ("dropped", str(report.dropped)), ("errors", str(report.errors)),
                      ("processing_ms_p50", f"{report.processing_ms[0]:.2f}"),
                      ("processing_ms_p95", f"{report.processing_ms[1]:.2f}"),
                      ("processing_ms_p99", f"{report.processing_ms[2]:.2f}"),
                      ("output_rate_hz", f"{report.output_rate_hz:.2f}")]
            values += [(k, str(v)) for k, v in report.counters.items()]
            values += [(k, f"{v:.4g}") for k, v in report.values.items()]
            out.append(DiagnosticEntry(f"perception: {report.name}", report.name, level, message, values))
        for topic in snap.topics:
            spec = topic.spec
            values = [("stage", spec.stage.value), ("camera", spec.camera),
                      ("messages_total", str(topic.messages_total)),
                      ("rate_hz", _fmt(topic.rate_hz, digits=2)),
                      ("expected_rate_hz", _fmt(spec.expected_rate_hz, digits=2)),
                      ("jitter_ms", _fmt(topic.jitter_s, 1000.0)),
                      ("age_ms_p50", _fmt(topic.age_p50_s, 1000.0)), ("age_ms_p95", _fmt(topic.age_p95_s, 1000.0)),
                      ("age_ms_p99", _fmt(topic.age_p99_s, 1000.0))]
            if spec.topic in snap.models:
                values.append(("model", snap.models[spec.topic]))
            out.append(DiagnosticEntry(f"perception topic: {spec.topic}", spec.camera or spec.topic, topic.level,
                                       topic.message or ("ok" if topic.level is Level.OK else ""), values))
        values, worst, reasons = [], Level.OK, []
        for (camera, stage), dropped in sorted(snap.drops_total.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
            passed = snap.passed_total.get((camera, stage), 0)
            values.append((f"{camera}.{stage.value}.dropped", str(dropped)))
            values.append((f"{camera}.{stage.value}.passed", str(passed)))
            # The detector drops superseded frames by design when it cannot keep up (the topics' rates say so);
            # a stage after it losing frames that reached the stage before is a fault.
            if stage is not Stage.DETECTIONS and dropped > self._reported_drops.get((camera, stage), 0):
                worst = Level.WARN
                reasons.append(f"{camera}: {dropped - self._reported_drops.get((camera, stage), 0)} frame(s) "
                               f"lost before {stage.value}")
            self._reported_drops[(camera, stage)] = dropped
        for stage, seconds in snap.stage_time_p50_s.items():
            values.append((f"{stage.value}.stage_ms_p50", _fmt(seconds, 1000.0)))
        out.append(DiagnosticEntry("perception: pipeline", "pipeline", worst, "; ".join(reasons) or "ok", values))
        return out


def timeline_row(snap: GraphSnapshot) -> dict:
    """One line of a run's timeline: rates, median ages and levels per topic, drift (statistic over threshold)."""
    drift = {}
    for report, _, _ in snap.nodes:
        for feature, (statistic, threshold) in report.drift().items():
            if threshold:
                drift[feature] = round(statistic / threshold, 4)
    by_stage: dict[str, list[float]] = {}
    for t in snap.topics:
        if t.age_p50_s is not None:
            by_stage.setdefault(t.spec.stage.value, []).append(t.age_p50_s * 1000)
    return {"t_s": round(snap.at_s, 3),
            "age_p50_ms_by_stage": {stage: round(float(np.median(v)), 1) for stage, v in by_stage.items()},
            "rates_hz": {t.spec.topic: None if t.rate_hz is None else round(t.rate_hz, 3) for t in snap.topics},
            "age_p50_ms": {t.spec.topic: None if t.age_p50_s is None else round(t.age_p50_s * 1000, 1)
                           for t in snap.topics},
            "levels": {**{t.spec.topic: int(t.level) for t in snap.topics},
                       **{r.name: int(level) for r, level, _ in snap.nodes}},
            "drift": drift}


class TimelineWriter:
    """Appends JSON lines to a file, rotating it to ``<path>.1`` past ``max_bytes`` (one old file kept), so a
    monitor that runs for months never fills the disk. Each line is written whole and flushed: a killed monitor
    leaves at most one partial line, which readers skip."""

    def __init__(self, path: str, max_bytes: int):
        from pathlib import Path

        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict) -> None:
        import json
        import os

        if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, separators=(",", ":")) + "\n")
