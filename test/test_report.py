"""Saved eval/bench results and `perception report` (no rclpy)."""
import json
import os

from conftest import last_json, run_cli
from perception_nodes.results import TARGETS, build_report, load_results, save_result


def test_saved_results_feed_the_report_with_targets_and_peer_ratios(tmp_path):
    save_result("eval-detection", ["eval", "detection"], {
        "map50": 0.95, "map50_95": 0.66, "per_class": {"car": {"map50": 0.99, "map50_95": 0.8},
                                                       "person": {"map50": 0.91, "map50_95": 0.6}}}, 0, tmp_path)
    save_result("eval-tracking-detector", ["eval", "tracking", "--detections", "detector"], {
        "hota": 0.7, "idf1": 0.83, "hota_vs_best_peer": 0.7 / 0.66,
        "peers": {"botsort": {"hota": 0.66, "idf1": 0.75}, "bytetrack": {"hota": 0.62, "idf1": 0.72}}}, 0, tmp_path)
    (tmp_path / "bench-broken.json").write_text("{not json")  # a corrupt file is skipped, not fatal
    (tmp_path / "bench-partial.json").write_text('{"result": {}}')  # so is one without the record's fields
    records, problems = load_results(tmp_path)
    assert set(records) == {"eval-detection", "eval-tracking-detector"} and len(problems) == 2
    assert any("bench-partial.json" in p and "missing key" in p for p in problems)
    text, summary = build_report(records, problems)
    by_label = {t["label"]: t for t in summary["targets"]}
    assert by_label["detection mAP@0.5:0.95, persons"]["met"] is False
    assert by_label["detection mAP@0.5, persons"]["met"] is True
    assert by_label["tracking IDF1 with detector output"]["figure"] == 0.83
    assert by_label["detector node vs raw ultralytics"]["met"] is None  # not measured
    # not run: bench detector (2 targets), bench tracker, eval tracking on noisy ground truth
    # and the observability targets: eval drift (3), every eval proxies one, the monitor's CPU in bench pipeline
    proxy_targets = sum(t.key == "eval-proxies" for t in TARGETS)
    assert summary["missed"] == 1 and summary["not_measured"] == 4 + 3 + proxy_targets + 1
    assert summary["met"] == len(TARGETS) - 1 - summary["not_measured"]
    assert "| botsort | 0.660 | 0.750 | 1.06 (hota) |" in text
    assert "bench-broken.json: skipped" in text
    history = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in history] == ["eval-detection", "eval-tracking-detector"]


def test_an_eval_run_is_saved_and_reported(tmp_path):
    env = dict(os.environ, PERCEPTION_RESULTS_DIR=str(tmp_path))
    result = last_json(run_cli("bench", "tracker", "--frames", "30", "--no-peers", env=env).stdout)
    saved = json.loads((tmp_path / "bench-tracker.json").read_text())
    assert saved["result"] == result and saved["command"] == "perception bench tracker --frames 30 --no-peers"
    assert saved["exit_code"] == 0 and saved["machine"]["cpus"] >= 1
    out = tmp_path / "report.md"
    summary = last_json(run_cli("report", "--out", str(out), env=env).stdout)
    target = next(t for t in summary["targets"] if t["key"] == "bench-tracker")
    assert target["figure"] == result["updates_per_s"] and "## bench-tracker" in out.read_text()


def test_tracking_results_are_kept_per_detection_source(tmp_path):
    env = dict(os.environ, PERCEPTION_RESULTS_DIR=str(tmp_path))
    run_cli("eval", "tracking", "--scene", "crossing", "--frames", "5", "--no-peers", env=env)
    run_cli("eval", "tracking", "--scene", "crossing", "--frames", "5", "--no-peers", "--appearance", "none", env=env)
    learned = last_json(run_cli("eval", "tracking", "--scene", "crossing", "--frames", "5", "--no-peers",
                                "--appearance", "reid-fleet@1", env=env).stdout)
    assert learned["appearance"] == "reid-fleet@1"
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "eval-tracking-gt-noisy-crossing.json", "eval-tracking-gt-noisy-no-appearance-crossing.json",
        "eval-tracking-gt-noisy-reid-fleet1-crossing.json"]
    unknown = run_cli("eval", "tracking", "--frames", "5", "--no-peers", "--appearance", "reid-nothing@9", env=env,
                      check=False)
    assert unknown.returncode != 0 and "reid-nothing" in unknown.stderr


def test_report_without_results_says_what_to_run(tmp_path):
    env = dict(os.environ, PERCEPTION_RESULTS_DIR=str(tmp_path / "none"))
    proc = run_cli("report", env=env, check=False)
    assert proc.returncode == 2 and "perception eval" in proc.stderr


def test_an_all_scenes_detection_run_reports_its_scenes_and_the_rules_verdict(tmp_path):
    save_result("eval-detection-all-scenes-m@2", ["eval", "detection", "--all-scenes", "--model", "m@2"], {
        "model": "m@2", "frame_step": 30,
        "scenes": {"night": {"map50": 0.86, "map50_95": 0.56}, "crossing": {"map50": 0.99, "map50_95": 0.73}},
        "reference": {"model": "m@1", "scenes": {"night": {"map50": 0.38, "map50_95": 0.17},
                                                  "crossing": {"map50": 0.98, "map50_95": 0.76}}},
        "promotion": {"promote": False, "reasons": ["crossing: +0.010 / -0.030 is below -0.01"]}}, 0, tmp_path)
    records, _ = load_results(tmp_path)
    text, _ = build_report(records)
    assert "| night | 0.860 | 0.560 | 0.380 | 0.170 |" in text
    assert "Promotion rule: keep the reference; crossing: +0.010 / -0.030 is below -0.01" in text
