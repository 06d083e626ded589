"""`perception explain LOG [--assessment N]`: read a risk node's decision log (MCAP) for a person."""
from __future__ import annotations

import sys

from perception_nodes.cli.common import emit
from perception_nodes.risk import DECISION_TOPIC, Command, EvaluationState, RiskLevel

LEVELS, COMMANDS, STATES = RiskLevel, Command, EvaluationState


def _name(enum_type, value: int) -> str:
    return enum_type(value).name if value in enum_type._value2member_map_ else f"?{value}"


def _records(path):
    from perception_nodes.bagio import deserialize, read_messages

    for message in read_messages(path, [DECISION_TOPIC]):
        yield deserialize(message)


def _print_record(record) -> None:
    a = record.assessment
    print(record.explanation)
    print(f"input snapshot: {len(record.objects)} objects")
    for o in record.objects:
        cov = o.position_covariance
        sources = ", ".join(f"{c.camera_id}#{c.track_id}" for c in o.contributors) or "no camera now"
        print(f"  {o.class_name or 'object'} {o.global_id}: ({o.position.x:.2f}, {o.position.y:.2f}) m, "
              f"v=({o.velocity.x:.2f}, {o.velocity.y:.2f}) m/s, sigma=({cov[0] ** 0.5:.2f}, {cov[4] ** 0.5:.2f}) m, "
              f"seen by {sources}")
    print(f"command #{record.command.sequence}: {_name(COMMANDS, record.command.command)} -> {record.command.target}"
          f"{' (fail-safe)' if record.command.fail_safe else ''}: {record.command.reason}")
    if a.fail_safe:
        print(f"fail-safe: {a.fail_safe_reason}")


def run_explain(args) -> int:
    from perception_nodes.errors import BagError

    try:
        records = list(_records(args.log))
    except (BagError, OSError, ValueError) as exc:
        print(f"cannot read decision log {args.log}: {exc}", file=sys.stderr)
        emit({"ok": False, "log": str(args.log), "error": str(exc)})
        return 1
    if not records:
        print(f"{args.log}: no decisions (topic {DECISION_TOPIC}) in this log", file=sys.stderr)
        emit({"ok": False, "log": str(args.log), "error": "no decisions"})
        return 1
    if args.assessment is None:
        levels: dict[str, int] = {}
        for r in records:
            levels[_name(LEVELS, r.assessment.level)] = levels.get(_name(LEVELS, r.assessment.level), 0) + 1
        fail_safe = sum(r.assessment.fail_safe for r in records)
        ids = [r.assessment.assessment_id for r in records]
        print(f"{args.log}: {len(records)} assessments ({min(ids)}..{max(ids)}), levels {levels}, "
              f"{fail_safe} fail-safe")
        for r in records:
            if r.assessment.reasons or r.assessment.fail_safe:
                print(f"  #{r.assessment.assessment_id} {_name(LEVELS, r.assessment.level)} "
                      f"{_name(COMMANDS, r.command.command)}: "
                      f"{r.assessment.fail_safe_reason or r.assessment.reasons[0].text}")
        emit({"ok": True, "log": str(args.log), "assessments": len(records), "levels": levels,
              "fail_safe": fail_safe})
        return 0
    chosen = [r for r in records if r.assessment.assessment_id == args.assessment]
    if not chosen:
        ids = [r.assessment.assessment_id for r in records]
        print(f"assessment {args.assessment} is not in {args.log} (it holds {min(ids)}..{max(ids)}; a restarted "
              f"node starts again at 1 in a new log)", file=sys.stderr)
        emit({"ok": False, "log": str(args.log), "error": f"no assessment {args.assessment}"})
        return 1
    record = chosen[-1]
    _print_record(record)
    a = record.assessment
    emit({"ok": True, "log": str(args.log), "assessment_id": int(a.assessment_id), "level": _name(LEVELS, a.level),
          "command": _name(COMMANDS, record.command.command), "fail_safe": bool(a.fail_safe),
          "reasons": [r.rule_id for r in a.reasons],
          "evaluations": {e.rule_id: _name(STATES, e.state) for e in record.evaluations}})
    return 0


def add_parsers(sub) -> None:
    explain = sub.add_parser("explain", help="print a risk decision from the risk node's decision log (MCAP)")
    explain.add_argument("log", help="decision log folder (the risk node logs its path at start)")
    explain.add_argument("--assessment", type=int, default=None,
                         help="the assessment id to explain (default: list the log's non-clear decisions)")
    explain.set_defaults(func=run_explain)


def load_candidate(path: str | None) -> tuple[dict | None, object | None, dict]:
    """A candidate configuration for the safety suite and the gate: a YAML file with an optional ``risk`` section
    (replacing each scene's suggested rules) and optional ``detection_noise`` (NoiseModel fields of the gt-noisy
    detector: a stand-in for a weaker or stronger detector). Returns (risk section, noise model, the raw file)."""
    if not path:
        return None, None, {}
    from dataclasses import fields, replace

    from perception_nodes.errors import ConfigError
    from perception_nodes.evaluation.mot import NoiseModel
    from perception_nodes.fileio import read_yaml_mapping
    from pathlib import Path

    data = read_yaml_mapping(Path(path), "candidate configuration")
    unknown = set(data) - {"risk", "detection_noise", "name", "description"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (risk, detection_noise, name, description)")
    noise = None
    if data.get("detection_noise") is not None:
        allowed = {f.name for f in fields(NoiseModel)}
        overrides = data["detection_noise"]
        if not isinstance(overrides, dict) or set(overrides) - allowed:
            raise ConfigError(f"{path}: detection_noise takes {sorted(allowed)}")
        noise = replace(NoiseModel(), **{k: float(v) for k, v in overrides.items()})
    return data.get("risk"), noise, data


def run_eval_safety(args) -> int:
    from perception_nodes.evaluation.risk import NOMINAL_SEEDS, evaluate_safety

    risk, noise, _ = load_candidate(args.config)
    seeds = [int(s) for s in args.nominal_seeds.split(",") if s] if args.nominal_seeds is not None else NOMINAL_SEEDS
    result = evaluate_safety([s for s in args.scenarios.split(",") if s] if args.scenarios else None, seeds,
                             args.nominal_seconds, risk, noise, args.jobs)
    base = result["baseline"]
    print(f"[safety] {result['passed']}/{result['scenario_count']} scenarios pass; missed critical hazards "
          f"{result['missed']}/{result['critical_hazards']}; smallest lead {result['min_lead_time_s']} s; false alarms "
          f"{result['false_alarms_per_hour']}/h over {result['nominal']['hours']} h of nominal operation; repeated "
          f"alerts per pair up to {result['nominal']['max_repeat_alerts_per_pair']}; decision p99 "
          f"{result['decision_ms_p99']} ms")
    print(f"[safety] baseline (naive rules on the same objects): {base['passed']} pass, missed {base['missed']}, "
          f"false alarms {base['false_alarms_per_hour']}/h (ours/baseline x{base['false_alarm_ratio_ours_vs_baseline']})")
    emit({**result, "config": args.config or ""})
    return 0


def add_eval_parser(eval_sub) -> None:
    ev = eval_sub.add_parser("safety", help="the long-tail scenario suite and nominal runs: pass/fail per scenario, "
                             "hazard-to-alert lead time, missed hazards, false alarms per hour, vs naive rules")
    ev.add_argument("--config", default=None, help="candidate YAML: 'risk' rules and/or 'detection_noise' "
                    "(default: each scene's suggested rules, the standard gt-noisy detector)")
    ev.add_argument("--scenarios", default=None, help="comma-separated scenario names (default: all under "
                    "config/scenes/scenarios)")
    ev.add_argument("--nominal-seeds", default=None, help="comma-separated seeds of the nominal runs (default 41,42; "
                    "empty: none)")
    ev.add_argument("--nominal-seconds", type=float, default=180.0, help="scene seconds per nominal run")
    ev.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    ev.set_defaults(func=run_eval_safety, result_variant=lambda a: a.config or "default")
