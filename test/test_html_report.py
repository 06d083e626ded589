"""`perception report --html`: every plot has data from saved results, the page is self-contained, headless
Chromium renders every plot, and a latency regression is told from noise by the samples."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import last_json, run_cli
from perception_nodes.monitoring.regression import compare_latency
from perception_nodes.results import save_result


def _pipeline(rng, p50_ms):
    samples = rng.normal(p50_ms, 0.15 * p50_ms, 600).clip(1).round(1).tolist()
    cams = {f"cam{i}": {"capture_to_image_ms": {"p50": 40.0, "p99": 60.0},
                        "capture_to_detections_ms": {"p50": p50_ms - 10, "p99": p50_ms + 40},
                        "capture_to_tracks_ms": {"p50": p50_ms, "p99": p50_ms + 50}, "track_rate_hz": 2.0 + i / 10}
            for i in range(4)}
    return {"cameras": cams, "samples_ms": {"capture_to_tracks": samples}, "memory_total_mb": 1000.0}


def _results(folder, slower_by=1.0):
    rng = np.random.default_rng(0)
    save_result("bench-pipeline", ["bench", "pipeline"], _pipeline(rng, 200.0), 0, folder)
    save_result("bench-pipeline", ["bench", "pipeline"], _pipeline(rng, 200.0 * slower_by), 0, folder)
    save_result("eval-drift", ["eval", "drift"], {
        "quiet": {"false_flags": 0}, "baselines": {"evidently_defaults": {"quiet": {"false_flags": 12}}},
        "series": {"night": [{"t_s": t, "image_brightness": 3.0 + t / 100, "class_mix": 0.4} for t in range(5, 120, 5)],
                   "bumped": [{"t_s": t, "view_shift_px": 0.1 if t < 60 else 2.5} for t in range(5, 150, 5)]}},
        0, folder)
    save_result("eval-localization", ["eval", "localization"], {"hota": 0.7, "idf1": 0.9,
                                                                "baseline": {"hota": 0.6, "idf1": 0.85}}, 0, folder)
    save_result("eval-safety", ["eval", "safety"], {
        "false_alarms_per_hour": 1240.0, "baseline": {"false_alarms_per_hour": 6080.0},
        "scenarios": {"speeding": {"pass": True, "lead_time_s": 2.5}, "wrong_way": {"pass": False, "lead_time_s": 1.2}}},
        0, folder)


def test_latency_regression_needs_both_a_shift_and_the_samples_to_show_it():
    rng = np.random.default_rng(1)
    base = rng.normal(200, 30, 800)
    assert compare_latency(base, rng.normal(240, 30, 800)).regression  # +20 %, clear
    assert not compare_latency(base, rng.normal(205, 30, 800)).regression  # +2.5 %: significant maybe, small
    noisy = compare_latency(base, [170.0, 236.0, 240.0])  # +18 % on the median of 3 samples: not shown
    assert noisy.ratio > 1.1 and noisy.p_value >= 0.05 and not noisy.regression
    faster = compare_latency(base, rng.normal(150, 30, 800))
    assert not faster.regression and faster.ratio < 0.8
    with pytest.raises(ValueError):
        compare_latency([1.0], [1.0, 2.0])


def test_html_report_has_every_plot_and_flags_the_regression(tmp_path):
    _results(tmp_path, slower_by=1.3)
    timeline = tmp_path / "timeline.jsonl"
    timeline.write_text("\n".join(json.dumps({"t_s": 100.0 + i, "rates_hz": {"/cam0/tracks": 2.0 + 0.1 * (i % 3)},
                                              "drift": {"image_brightness": 0.2}}) for i in range(30))
                        + "\n{half a line")
    page = tmp_path / "report.html"
    result = last_json(run_cli("report", "--results", str(tmp_path), "--html", str(page),
                               "--timeline", str(timeline)).stdout)
    assert result["plots"] == {"latency": True, "rates": True, "drift": True, "accuracy": True, "safety": True}
    assert result["latency_regression"]["regression"] is True
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 5 and "http" not in text.split("<body>")[1]  # self-contained
    assert "REGRESSION" in text


def test_a_report_without_measurements_says_what_to_run(tmp_path):
    save_result("eval-detection", ["eval", "detection"], {"map50": 0.9}, 0, tmp_path)
    page = tmp_path / "r.html"
    result = last_json(run_cli("report", "--results", str(tmp_path), "--html", str(page)).stdout)
    assert not any(result["plots"].values()) and result["latency_regression"] is None
    assert "perception bench pipeline" in page.read_text()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (make setup installs Debian's chromium as root)")
def test_headless_chromium_renders_every_plot(tmp_path):
    _results(tmp_path)
    page = tmp_path / "report.html"
    run_cli("report", "--results", str(tmp_path), "--html", str(page))
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert 'data-plots-rendered="5"' in dom and 'data-plots-total="5"' in dom, dom[-500:]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + ["--window-size=1100,5000", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, env=dict(os.environ))
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None, "no screenshot"
    # Plots are coloured lines and bars on white: count rows of the page that hold coloured pixels.
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    coloured_rows = int(np.sum((saturation > 80).sum(1) > 5))
    assert coloured_rows > 5 * 100, coloured_rows
