"""The safety suite: scenario world features, a scenario scored end to end, the gate's thresholds and CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from perception_nodes.errors import ConfigError
from perception_nodes.world import World, load_scene

SCENARIOS = "config/scenes/scenarios"


def test_scripted_legs_stop_and_reverse_with_the_heading_kept(tmp_path):
    scene = load_scene(f"{SCENARIOS}/reversing_toward_person.yaml")
    world = World(scene)
    car = world.actors[0]
    present, p0, yaw0, v0 = car.state(2.0)          # parked: standing still
    assert present and np.allclose(v0, 0) and np.allclose(p0[:2], [-13.7, -8.6])
    _, p1, yaw1, v1 = car.state(5.0)                 # reversing north: moving +y, facing -y
    assert v1[1] == pytest.approx(1.6) and abs(v1[0]) < 1e-9
    assert np.cos(yaw1 - (-np.pi / 2)) == pytest.approx(1.0)
    _, _, yaw2, v2 = car.state(9.0)                  # then drives west, facing west
    assert v2[0] == pytest.approx(-3.0) and np.cos(yaw2 - np.pi) == pytest.approx(1.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: default\ntraffic:\n  count: 0\n  scripted:\n    - {class: car, start: [0, 0], legs: "
                   "[{to: [5, 0]}]}\n")
    with pytest.raises(ConfigError, match="speed"):
        load_scene(bad)


def test_one_way_lanes_and_disturbances_reach_the_site_and_are_checked(tmp_path):
    from perception_nodes.sources.synthetic import site_manifest_for_scene

    scene = load_scene(f"{SCENARIOS}/wrong_way_vehicle.yaml")
    site = site_manifest_for_scene(scene, ".")
    assert [lane["direction"] for lane in site["map"]["lanes"]] == ["forward", "forward", "both"]
    assert any(rule["kind"] == "wrong_way" for rule in site["risk"]["rules"])
    dropout = load_scene(f"{SCENARIOS}/camera_dropout.yaml").disturbances.camera_dropouts[0]
    assert (dropout.camera, dropout.start_s, dropout.end_s) == ("cam3", 6.0, 14.0) and dropout.contains(6.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: default\ndisturbances:\n  camera_dropouts:\n    - {camera: cam9, start_s: 1, end_s: 2}\n")
    with pytest.raises(ConfigError, match="cam9|camera"):
        load_scene(bad)


def test_a_latency_spike_scenario_end_to_end():
    """Detections 2.5 s late for 4 s: the fail-safe comes as the late tracks arrive; the person crossing in front
    of the car is alerted at least 2.1 s before the closest approach, and nothing false is raised."""
    from perception_nodes.evaluation.risk import replay_scene, score_rules

    replay = replay_scene(f"{SCENARIOS}/latency_spike.yaml", log=lambda *a: None)
    result = score_rules(replay)
    assert result["pass"], result
    critical = [h for h in result["hazards"] if h["severity"] >= 4 and h["kind"] == "time_to_collision"]
    assert critical and all(h["detected"] and h["lead_time_s"] >= 2.1 for h in critical)
    event = result["fail_safe"]["expected"][0]
    assert event["pass"] and 2.5 <= event["fail_safe_after_s"] <= event["allowed_s"]
    assert result["false_alarms"] == 0 and "baseline" in result
    # The same chain with a late TTC threshold alerts too late for the NHTSA lead: the scenario fails.
    late = replay.default_rules()
    late["rules"] = [dict(r, ttc_s=0.8) if r["id"] == "person_vehicle_ttc" else r for r in late["rules"]
                     if r["kind"] != "separation"]
    assert not score_rules(replay, late, with_baseline=False)["pass"]


def test_gate_thresholds_block_what_got_worse_and_pass_the_same():
    from perception_nodes.evaluation.gate import judge, load_thresholds
    from perception_nodes.paths import package_path

    thresholds = load_thresholds(package_path("config/gate.yaml"))
    base = {"safety.missed": 0, "safety.passed": 11, "safety.min_lead_time_s": 2.5,
            "safety.false_alarms_per_hour": 40.0, "localization.hota": 0.70, "localization.idf1": 0.85,
            "localization.position_p50_m": 0.23, "latency.risk_decision_ms_p99": 5.0}
    same = judge(thresholds, dict(base), base)
    assert same["ship"] and not same["blocking"]
    worse = judge(thresholds, {**base, "safety.missed": 1, "localization.hota": 0.60,
                               "safety.false_alarms_per_hour": 44.0}, base)
    assert not worse["ship"] and set(worse["blocking"]) == {"safety.missed", "localization.hota"}
    trends = {m["metric"]: m["trend"] for m in worse["metrics"]}
    assert trends["safety.missed"] == "worse" and trends["safety.false_alarms_per_hour"] == "worse"
    assert trends["localization.idf1"] == "same"
    better = judge(thresholds, {**base, "safety.false_alarms_per_hour": 10.0}, base)
    assert better["ship"] and {m["metric"]: m["trend"] for m in better["metrics"]}[
        "safety.false_alarms_per_hour"] == "better"


def test_gate_cli_passes_the_default_against_itself_and_blocks_a_late_rule_set(tmp_path):
    from perception_nodes.sources.synthetic import site_manifest_for_scene

    rules = site_manifest_for_scene(load_scene(f"{SCENARIOS}/latency_spike.yaml"), ".")["risk"]
    rules["rules"] = [dict(r, ttc_s=0.8) if r["id"] == "person_vehicle_ttc" else r for r in rules["rules"]
                      if r["kind"] != "separation"]
    import yaml

    late = tmp_path / "late.yaml"
    late.write_text(yaml.safe_dump({"name": "late", "risk": rules}))
    common = ["--scenarios", "latency_spike", "--nominal-seeds", "", "--localization-frames", "0", "--no-latency",
              "--jobs", "1"]
    cmd = [sys.executable, "-m", "perception_nodes.cli.main", "gate"]
    same = subprocess.run(cmd + ["--candidate", "config/candidates/default.yaml", "--baseline",
                                 "config/candidates/default.yaml"] + common, capture_output=True, text=True,
                          timeout=600)
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-3000:]
    assert json.loads(same.stdout.strip().splitlines()[-1])["ship"] and "SHIP" in same.stdout
    blocked = subprocess.run(cmd + ["--candidate", str(late), "--baseline", "config/candidates/default.yaml"] + common,
                             capture_output=True, text=True, timeout=600)
    verdict = json.loads(blocked.stdout.strip().splitlines()[-1])
    assert blocked.returncode == 1 and not verdict["ship"], blocked.stdout[-3000:]
    assert "safety.passed" in verdict["blocking"] and "NO-SHIP" in blocked.stdout
