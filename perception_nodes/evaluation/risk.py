"""Risk harnesses: ``perception bench risk`` (the engine's decision time with N objects, against exact all-pairs
evaluation) and the object stream it and the node benchmark use."""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.risk import ObjectState, RiskEngine, parse_risk_config


def bench_stream(objects: int = 100, frames: int = 300, seed: int = 0, half_size=(30.0, 20.0),
                 parked_share: float = 0.0) -> list[list]:
    """``frames`` snapshots at 10 Hz of ``objects`` objects (40 % vehicles) moving about a lot in random directions,
    bouncing off its edges; ``parked_share`` of the vehicles stand still. With none parked it is a dense, busy
    scene (many pairs closing on each other) that the rules must evaluate every frame."""
    rng = np.random.default_rng(seed)
    vehicles = int(round(0.4 * objects))
    classes = ["car" if i % 5 else "truck" for i in range(vehicles)] + ["person"] * (objects - vehicles)
    half = np.asarray(half_size)
    xy = rng.uniform(-half, half, (objects, 2))
    speed = np.array([rng.uniform(0.0, 7.0) if c != "person" else rng.uniform(0.0, 1.8) for c in classes])
    speed[:int(round(parked_share * vehicles))] = 0.0
    angle = rng.uniform(-np.pi, np.pi, objects)
    sizes = {"car": (4.4, 1.8), "truck": (7.5, 2.5), "person": (0.3, 0.42)}
    out = []
    for _ in range(frames):
        velocity = np.column_stack([np.cos(angle), np.sin(angle)]) * speed[:, None]
        xy = xy + 0.1 * velocity
        bounce = np.abs(xy) > half
        velocity[bounce] *= -1
        angle = np.arctan2(velocity[:, 1], velocity[:, 0])
        xy = np.clip(xy, -half, half)
        angle += rng.normal(0.0, 0.05, objects)
        out.append([ObjectState(i + 1, c, (float(xy[i, 0]), float(xy[i, 1])), (float(velocity[i, 0]),
                                float(velocity[i, 1])), ((0.09, 0.0), (0.0, 0.09)), ((0.16, 0.0), (0.0, 0.16)),
                                *sizes[c], float(angle[i]) if speed[i] > 0.3 else None)
                    for i, c in enumerate(classes)])
    return out


def bench_engine(site_map, risk_section, objects: int = 100, frames: int = 300, parked_share: float = 0.0) -> dict:
    """Decision time per snapshot (p50/p99 ms) of the engine with the site's rules on ``objects`` objects, and the
    same with every pair evaluated by the scalar closest approach (the reference the arrays must agree with)."""
    stream = bench_stream(objects, frames, parked_share=parked_share)
    config = parse_risk_config(risk_section, site_map)

    def measure(vectorized: bool) -> tuple[dict, list]:
        engine = RiskEngine(config, site_map, vectorized=vectorized)
        times, decisions = [], []
        for index, snapshot in enumerate(stream):
            started = time.perf_counter()
            a = engine.assess(index * 0.1, snapshot)
            times.append(time.perf_counter() - started)
            decisions.append((int(a.level), int(a.command), tuple(sorted((e.rule.id, e.object_ids)
                                                                         for e in a.reasons))))
        ms = np.asarray(times) * 1e3
        return {"decision_ms_p50": round(float(np.percentile(ms, 50)), 3),
                "decision_ms_p99": round(float(np.percentile(ms, 99)), 3),
                "decisions_per_s": round(len(ms) / float(ms.sum() / 1e3), 1)}, decisions

    ours, decided = measure(True)
    exact, reference = measure(False)
    active = [len(d[2]) for d in decided]
    return {**ours, "objects": objects, "frames": frames, "rules": len(config.rules), "parked_share": parked_share,
            "active_reasons_mean": round(float(np.mean(active)), 2),
            "same_decisions_as_scalar": decided == reference, "scalar_pairs": exact,
            "speedup_vs_scalar": round(exact["decision_ms_p99"] / max(ours["decision_ms_p99"], 1e-9), 2)}
