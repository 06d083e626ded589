"""Monitoring core (no ROS): topic rates, jitter and ages; drops between stages; drift statistics and the monitor's
verdicts; the Prometheus exposition parsed back."""
from __future__ import annotations

import numpy as np
import pytest

from perception_nodes.errors import ConfigError
from perception_nodes.monitoring.drift import (DriftConfig, DriftMonitor, DriftReference, FeatureRule, FeatureSamples,
                                               jensen_shannon, psi, reduce_frame, view_shift, wasserstein_normalised)
from perception_nodes.monitoring.graph import GraphMonitor, NodeReport
from perception_nodes.monitoring.topics import Level, Stage, StageChain, TopicMonitor, TopicSpec, TopicThresholds


def _feed(monitor: TopicMonitor, rate_hz: float, seconds: float, age_s: float, start: float = 100.0,
          jitter_s: float = 0.0, rng=None) -> float:
    t = start
    while t < start + seconds:
        receipt = t + (rng.normal(0, jitter_s) if rng is not None else 0.0)
        monitor.on_message(receipt, receipt - age_s)
        t += 1.0 / rate_hz
    return t


def test_topic_at_its_expected_rate_is_ok_with_its_age():
    monitor = TopicMonitor(TopicSpec("/cam0/tracks", Stage.TRACKS, "cam0", expected_rate_hz=10.0))
    end = _feed(monitor, 10.0, 12.0, age_s=0.12)
    snap = monitor.snapshot(end)
    assert snap.level is Level.OK, snap.message
    assert snap.rate_hz == pytest.approx(10.0, rel=0.02)
    assert snap.age_p50_s == pytest.approx(0.12, abs=1e-6)
    assert snap.jitter_s == pytest.approx(0.0, abs=1e-6)
    assert sum(monitor.age_bucket_counts) == monitor.messages_total


@pytest.mark.parametrize("rate, expected_level", [(7.0, Level.WARN), (3.0, Level.ERROR)])
def test_slow_topic_warns_then_errors(rate, expected_level):
    monitor = TopicMonitor(TopicSpec("/cam0/detections", Stage.DETECTIONS, "cam0", expected_rate_hz=10.0))
    end = _feed(monitor, rate, 12.0, age_s=0.05)
    snap = monitor.snapshot(end)
    assert snap.level is expected_level and "rate" in snap.message


def test_old_data_and_silence_and_jitter_are_judged():
    thresholds = TopicThresholds(age_warn_s=0.25, age_error_s=1.0)
    old = TopicMonitor(TopicSpec("/objects", Stage.OBJECTS, expected_rate_hz=5.0), thresholds)
    end = _feed(old, 5.0, 10.0, age_s=1.5)
    assert old.snapshot(end).level is Level.ERROR
    assert old.snapshot(end + 60.0).level is Level.STALE
    never = TopicMonitor(TopicSpec("/risk/assessment", Stage.ASSESSMENT))
    assert never.snapshot(5.0).level is Level.STALE
    jittery = TopicMonitor(TopicSpec("/cam1/camera_info", Stage.CAPTURE, "cam1", expected_rate_hz=10.0))
    end = _feed(jittery, 10.0, 10.0, age_s=0.01, jitter_s=0.08, rng=np.random.default_rng(1))
    snap = jittery.snapshot(end)
    assert snap.level is Level.WARN and "jitter" in snap.message


def test_a_stamp_from_the_future_is_counted_not_aged():
    monitor = TopicMonitor(TopicSpec("/cam0/tracks", Stage.TRACKS, "cam0"))
    monitor.on_message(10.0, 12.0)  # a bag loop jumped back, or a skewed clock
    monitor.on_message(10.1, float("nan"))
    assert monitor.negative_ages_total == 1 and monitor.age_count == 0 and monitor.messages_total == 2


def test_stage_chain_counts_drops_per_hand_over_and_stage_time():
    chain = StageChain(grace_s=1.0)
    for i in range(10):
        stamp = 1_000_000_000 * (i + 1)
        t = float(i + 1)
        chain.on_stage("cam0", Stage.CAPTURE, stamp, t + 0.01, 0.01)
        if i % 2 == 0:  # the detector skipped every other frame
            chain.on_stage("cam0", Stage.DETECTIONS, stamp, t + 0.11, 0.11)
            if i != 4:  # and the tracker lost one
                chain.on_stage("cam0", Stage.TRACKS, stamp, t + 0.12, 0.12)
    chain.expire(100.0)
    assert chain.drops_total[("cam0", Stage.DETECTIONS)] == 5
    assert chain.drops_total[("cam0", Stage.TRACKS)] == 1
    assert chain.passed_total[("cam0", Stage.TRACKS)] == 4
    assert chain.stage_time_p50_s(Stage.DETECTIONS) == pytest.approx(0.10)
    assert chain.drop_ratio("cam0", Stage.DETECTIONS) == pytest.approx(0.5)


def test_graph_monitor_diagnostics_name_stale_nodes_and_lost_frames():
    specs = [TopicSpec(f"/cam0/{name}", stage, "cam0", 10.0)
             for name, stage in (("camera_info", Stage.CAPTURE), ("detections", Stage.DETECTIONS),
                                 ("tracks", Stage.TRACKS))]
    graph = GraphMonitor(specs, stale_after_s=2.0, chain_grace_s=0.5)
    for i in range(50):
        t, stamp = 10.0 + i * 0.1, int((10.0 + i * 0.1) * 1e9)
        graph.on_message("/cam0/camera_info", t + 0.005, stamp)
        graph.on_message("/cam0/detections", t + 0.05, stamp, model="yolo@3")
        if i != 20:
            graph.on_message("/cam0/tracks", t + 0.06, stamp)
    graph.on_health(NodeReport("/detector", 0, "", 50, 50, 0, 0, (40.0, 45.0, 50.0), 10.0, {"batches": 50},
                               {"drift.image_brightness": 0.4, "drift_threshold.image_brightness": 0.2},
                               received_at_s=10.0))
    snap = graph.snapshot(15.0)
    entries = {e.name: e for e in graph.diagnostics(snap)}
    assert entries["perception: /detector"].level is Level.STALE
    assert entries["perception topic: /cam0/tracks"].level is Level.OK
    assert dict(entries["perception topic: /cam0/detections"].values)["model"] == "yolo@3"
    pipeline = entries["perception: pipeline"]
    assert pipeline.level is Level.WARN and "lost before tracks" in pipeline.message
    assert graph.diagnostics(graph.snapshot(15.5))[-1].level is Level.OK  # reported once, not forever
    assert snap.nodes[0][0].drift() == {"image_brightness": (0.4, 0.2)}


def test_prometheus_exposition_parses_with_histograms_and_totals():
    from prometheus_client.parser import text_string_to_metric_families

    from perception_nodes.monitoring.metrics import MetricsServer

    graph = GraphMonitor([TopicSpec("/cam0/tracks", Stage.TRACKS, "cam0", 10.0)])
    for i in range(20):
        graph.on_message("/cam0/tracks", 1.0 + i * 0.1, int((1.0 + i * 0.1 - 0.2) * 1e9), model="m@1")
    graph.on_health(NodeReport("/cam0/tracker", 0, "", 20, 20, 1, 0, (1.0, 2.0, 3.0), 10.0, received_at_s=2.9,
                               values={"drift.class_mix": 0.05, "drift_threshold.class_mix": 0.1}))
    server = MetricsServer(lambda: graph.snapshot(3.0), port=0)
    try:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    age = families["perception_stage_data_age_seconds"]
    assert age.type == "histogram"
    count = [s for s in age.samples if s.name.endswith("_count")][0]
    assert count.value == 20 and count.labels == {"stage": "tracks", "camera": "cam0"}
    le_025 = [s for s in age.samples if s.name.endswith("_bucket") and s.labels["le"] == "0.25"][0]
    assert le_025.value == 20
    assert families["perception_topic_messages"].type == "counter"
    assert [s.value for s in families["perception_topic_messages"].samples if s.name.endswith("_total")] == [20]
    assert [s.value for s in families["perception_node_dropped"].samples if s.name.endswith("_total")] == [1]
    assert families["perception_drift_detected"].samples[0].value == 0
    assert families["perception_model_info"].samples[0].labels["model"] == "m@1"


def test_metrics_server_binds_loopback_by_default():
    from perception_nodes.monitoring.metrics import MetricsServer

    server = MetricsServer(lambda: GraphMonitor([]).snapshot(0.0), port=0)
    try:
        assert server.address == "127.0.0.1"
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.close()


# -- drift -------------------------------------------------------------------------------------------------
def test_statistics_see_a_shift_and_not_a_resample():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.5, 0.1, 4000)
    same = rng.normal(0.5, 0.1, 1500)
    shifted = rng.normal(0.56, 0.1, 1500)
    assert wasserstein_normalised(ref, same) < 0.1 <= wasserstein_normalised(ref, shifted)
    assert psi(ref, same) < 0.1 and psi(ref, rng.normal(0.8, 0.1, 1500)) >= 0.2
    assert jensen_shannon({0: 700, 2: 300}, {0: 690, 2: 310}) < 0.05
    assert jensen_shannon({0: 700, 2: 300}, {0: 200, 2: 800}) > 0.3


def _frame(rng, brightness=0.5, shift=(0, 0)):
    base = np.zeros((480, 640, 3), np.uint8)
    # a textured static background (the site), optionally translated (a moved camera)
    tile = np.random.default_rng(7).integers(0, 255, (120, 160), dtype=np.uint8)
    import cv2

    background = cv2.resize(tile, (640, 480), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    matrix = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    background = cv2.warpAffine(background, matrix, (640, 480), borderMode=cv2.BORDER_REFLECT)
    grey = np.clip(background * brightness * 2 + rng.normal(0, 3, background.shape), 0, 255)
    base[:] = grey.astype(np.uint8)[..., None]
    return base


def _rows(rng, n, score_mean=0.8):
    x = rng.uniform(0, 600, n)
    y = rng.uniform(100, 440, n)
    return np.stack([x, y, x + 40, y + 30, np.clip(rng.normal(score_mean, 0.08, n), 0, 1),
                     rng.choice([0, 2], n, p=[0.7, 0.3])], 1)


def _reference(rng):
    samples = FeatureSamples()
    for _ in range(150):
        frame = _frame(rng)
        samples.add_frame(reduce_frame(frame), _rows(rng, 40), 640, 480, rng.normal(0, 1, (40, 16)))
    return DriftReference.from_samples("m@1", samples, {"scene": "test"})


def test_reference_round_trips_and_rejects_a_corrupt_file(tmp_path):
    rng = np.random.default_rng(3)
    reference = _reference(rng)
    path = tmp_path / "ref.json"
    path.write_text(reference.to_json())
    loaded = DriftReference.load(path)
    assert loaded.model == "m@1" and loaded.categorical["class_mix"] == reference.categorical["class_mix"]
    assert np.allclose(loaded.numerical["box_size"], reference.numerical["box_size"], atol=1e-6)
    assert loaded.embedding_components.shape == (8, 16)
    path.write_text(reference.to_json()[:100])
    with pytest.raises(ConfigError, match="malformed"):
        DriftReference.load(path)


def test_drift_monitor_flags_darkness_and_a_moved_camera_but_not_the_reference_conditions():
    rng = np.random.default_rng(5)
    reference = _reference(rng)
    config = DriftConfig(window_s=30.0)
    config.rules["view_shift_px"] = FeatureRule(4.0, 5)
    calm = DriftMonitor(reference, config)
    dark = DriftMonitor(reference, config)
    moved = DriftMonitor(reference, config)
    for i in range(40):
        t = float(i)
        for monitor, brightness, shift, score in ((calm, 0.5, (0, 0), 0.8), (dark, 0.2, (0, 0), 0.55),
                                                  (moved, 0.5, (10, 4) if i >= 15 else (0, 0), 0.8)):
            frame = _frame(rng, brightness, shift)
            monitor.observe("cam0", t, reduce_frame(frame), _rows(rng, 40, score), 640, 480,
                            rng.normal(0, 1, (40, 16)))
    assert calm.evaluate(39.0).drifted == []
    dark_report = dark.evaluate(39.0)
    assert {"image_brightness", "detection_score"} <= set(dark_report.drifted)
    assert "view_shift_px" not in dark_report.drifted
    moved_report = moved.evaluate(39.0)
    assert "view_shift_px" in moved_report.drifted and "detection_score" not in moved_report.drifted
    assert moved_report.features["view_shift_px"].statistic == pytest.approx(np.hypot(10, 4), abs=1.5)
    assert moved_report.features["view_shift_px"].camera == "cam0"


def test_model_features_wait_until_the_frames_span_the_minimum_window(tmp_path):
    rng = np.random.default_rng(6)
    reference = _reference(rng)
    monitor = DriftMonitor(reference, DriftConfig(window_s=30.0, min_window_s=10.0))
    for i in range(21):  # 2 frames a second, far lower scores than the reference's from the first one
        frame = _frame(rng, 0.2)
        monitor.observe("cam0", 100.0 + i / 2, reduce_frame(frame), _rows(rng, 40, 0.55), 640, 480)
        if i == 9:  # 4.5 s of frames: plenty of samples, too short a span to judge
            early = monitor.evaluate(100.0 + i / 2)
            assert early.drifted == [] and early.features["detection_score"].statistic is None
            assert early.features["detection_score"].samples == 400  # judged on count alone, it would flag
    later = monitor.evaluate(110.0)  # 10 s after the first frame
    assert "detection_score" in later.drifted
    path = tmp_path / "drift.yaml"
    path.write_text("window_s: 20\nmin_window_s: 30\n")
    with pytest.raises(ConfigError, match="min_window_s"):
        DriftConfig.load(path)


def test_view_shift_measures_a_translation():
    rng = np.random.default_rng(2)
    a = reduce_frame(_frame(rng))
    b = reduce_frame(_frame(rng, shift=(12, 0)))
    assert view_shift(a, b) * 4 == pytest.approx(12, abs=1.0)


def test_drift_config_rejects_unknown_features(tmp_path):
    path = tmp_path / "drift.yaml"
    path.write_text("features:\n  shoe_size: {threshold: 1}\n")
    with pytest.raises(ConfigError, match="unknown feature"):
        DriftConfig.load(path)
    path.write_text("window_s: 45\nfeatures:\n  class_mix: {threshold: 0.2, min_samples: 50}\n"
                    "  box_size: {threshold: 0.3}\n")
    config = DriftConfig.load(path)
    assert config.window_s == 45 and config.rules["class_mix"] == FeatureRule(0.2, 50)
    assert config.rules["box_size"].scale_floor == 0.005  # kept from the defaults


def test_timeline_rows_rotate_and_carry_drift(tmp_path):
    from perception_nodes.monitoring.graph import TimelineWriter, timeline_row
    from perception_nodes.monitoring.html_report import load_timeline

    graph = GraphMonitor([TopicSpec("/cam0/tracks", Stage.TRACKS, "cam0", 10.0)])
    for i in range(30):
        graph.on_message("/cam0/tracks", 1.0 + i * 0.1, int((0.9 + i * 0.1) * 1e9))
    graph.on_health(NodeReport("/detector", 1, "drift: view_shift_px", 0, 0, 0, 0, (0, 0, 0), 0.0,
                               values={"drift.view_shift_px": 8.0, "drift_threshold.view_shift_px": 4.0},
                               received_at_s=3.9))
    row = timeline_row(graph.snapshot(4.0))
    assert row["drift"] == {"view_shift_px": 2.0} and row["rates_hz"]["/cam0/tracks"] == pytest.approx(10.0)
    assert row["levels"]["/detector"] == 1
    assert row["age_p50_ms_by_stage"] == {"tracks": pytest.approx(100.0)}
    writer = TimelineWriter(str(tmp_path / "t" / "timeline.jsonl"), max_bytes=2000)
    for _ in range(20):
        writer.write(row)
    assert (tmp_path / "t" / "timeline.jsonl.1").is_file()
    assert (tmp_path / "t" / "timeline.jsonl").stat().st_size < 2000 + 400
    assert load_timeline(tmp_path / "t" / "timeline.jsonl")[0]["drift"] == {"view_shift_px": 2.0}


# -- FP/FN proxies -------------------------------------------------------------------------------------------
def test_track_proxies_tell_flicker_and_mid_view_losses_from_objects_leaving():
    from perception_nodes.monitoring.proxies import CONFIRMED, LOST, TENTATIVE, TrackProxies, TrackView

    proxies = TrackProxies(640, 480)
    t = 0.0
    # track 1 drives out of the left border; track 2 is lost mid-view (missed) and coasts, then ends;
    # track 3 flickers tentatively for one frame; track 4 is hidden behind track 5 when it vanishes.
    for i in range(20):
        t = i * 0.1
        tracks = [TrackView(1, CONFIRMED, (max(0.0, 100 - 10 * i), 200, 150 - 10 * i, 260), i + 1, 0, 0.9)]
        state2, since2 = (CONFIRMED, 0) if i < 12 else (LOST, i - 11)
        tracks.append(TrackView(2, state2, (300, 200, 360, 260), min(i, 11) + 1, since2, 0.9))
        if i == 3:
            tracks.append(TrackView(3, TENTATIVE, (500, 100, 520, 130), 1, 0, 0.6))
        if i < 12:
            tracks.append(TrackView(4, CONFIRMED, (405, 305, 445, 345), i + 1, 0, 0.9))
        tracks.append(TrackView(5, CONFIRMED, (400, 300, 460, 360), i + 1, 0, 0.9))
        if i >= 14:
            tracks = [tr for tr in tracks if tr.track_id != 1]  # left the view
        if i >= 18:
            tracks = [tr for tr in tracks if tr.track_id != 2]  # removed after coasting
        proxies.update(t, tracks)
    values = proxies.values()
    # ended: 3 (short, never confirmed), 4 (covered), 1 (at the border), 2 (mid-view, uncovered)
    assert values["ended_tracks"] == 4
    assert values["short_lived_ratio"] == pytest.approx(1 / 4)
    assert values["vanished_mid_view_ratio"] == pytest.approx(1 / 3)
    assert values["coasting_mid_view_ratio"] > 0
    assert values["low_score_update_ratio"] == 0.0  # every update came from a confident detection


def test_low_score_update_ratio_counts_confirmed_tracks_held_by_weak_detections():
    from perception_nodes.monitoring.proxies import CONFIRMED, LOST, TENTATIVE, ProxyParams, TrackProxies, TrackView

    proxies = TrackProxies(640, 480, ProxyParams(low_score=0.5))
    for i in range(10):
        proxies.update(i * 0.1, [
            TrackView(1, CONFIRMED, (100, 100, 150, 160), i + 5, 0, 0.8),               # seen well
            TrackView(2, CONFIRMED, (300, 100, 350, 160), i + 5, 0, 0.3 if i >= 5 else 0.8),  # fading
            TrackView(3, TENTATIVE, (500, 100, 520, 130), 1, 0, 0.2),                  # not confirmed: not counted
            TrackView(4, LOST, (200, 300, 260, 360), 9, 2, 0.2)])                      # coasting: not an update
    # 20 updates of confirmed tracks, 5 of them by a detection under 0.5
    assert proxies.values()["low_score_update_ratio"] == pytest.approx(5 / 20)


def test_cross_camera_proxy_counts_what_one_camera_misses_in_the_others_view():
    from perception_nodes.localization.lifting import CameraGeometry
    from perception_nodes.monitoring.proxies import CrossCameraProxy
    from perception_nodes.geometry import Transform

    def camera(name, x, yaw):
        # optical frame looking along +x rotated by yaw, pitched 30 degrees down, 6 m up
        pitch = np.radians(30)
        forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.cross(forward, right)
        R = np.column_stack([right, down, forward])
        K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        return CameraGeometry(name, 640, 480, K, np.zeros(5), Transform(R, np.array([x, 0.0, 6.0])))

    a, b = camera("a", 0.0, 0.0), camera("b", 20.0, np.pi)
    proxy = CrossCameraProxy({"a": a, "b": b})
    target = np.array([[10.0, 0.0, 0.0]])

    def box(cam, point):
        (u, v), = cam.project(point)[0]
        return np.array([[u - 20, v - 40, u + 20, v]])

    for _ in range(5):  # both see the car at (10, 0)
        proxy.observe({"a": (box(a, target), [0]), "b": (box(b, target), [0])})
    for _ in range(5):  # b misses it
        proxy.observe({"a": (box(a, target), [0]), "b": (np.zeros((0, 4)), [])})
    values = proxy.values()
    assert values["b"] == pytest.approx(0.5) and values["a"] == pytest.approx(0.0)


def test_detection_truth_counts_errors_and_ignores_hidden_objects():
    from perception_nodes.monitoring.proxies import detection_truth

    truth = [(0, 0, 10, 10), (20, 20, 30, 30), (50, 50, 60, 60)]
    rows = np.array([[0, 0, 10, 10, 0.9, 0], [50, 50, 60, 60, 0.8, 0], [80, 80, 90, 90, 0.7, 0],
                     [20, 20, 30, 30, 0.6, 2]])  # a hit, a hit on an ignored object, a phantom, a wrong class
    fp, dets, fn, evaluated = detection_truth(rows, truth, [0, 0, 0], [True, True, False])
    assert (fp, dets, fn, evaluated) == (2, 3, 1, 2)


def test_receipt_clock_carries_reception_times_onto_a_replay_clock():
    from perception_nodes.monitoring.topics import ReceiptClock

    clock = ReceiptClock(smoothing=0.0)
    clock.update(1000.0, 50.0)
    clock.update(1000.2, 50.4)          # the replay runs at double speed
    assert clock.rate == pytest.approx(2.0)
    assert clock.to_clock(1000.15) == pytest.approx(50.3)   # received 0.05 s of system time before the poll
    assert clock.to_clock(1000.3) == pytest.approx(50.4)    # never after the poll
    clock.update(1000.4, 50.4)          # paused: everything received meanwhile is at the paused time
    assert clock.rate == 0.0 and clock.to_clock(1000.3) == pytest.approx(50.4)
    clock.update(1000.6, 10.0)          # the replay restarted: the clock jumped back, the rate stands
    assert clock.rate == 0.0 and clock.to_clock(1000.6) == pytest.approx(10.0)
    smoothed = ReceiptClock()
    smoothed.update(0.0, 0.0)
    smoothed.update(1.0, 3.0)
    assert smoothed.rate == pytest.approx(2.0)   # halfway from the starting rate 1 to the measured 3
    with pytest.raises(RuntimeError):
        ReceiptClock().to_clock(1.0)
