"""`perception train embedder`, `perception export embedder`, `perception eval retrieval` and `perception bench
retrieval`."""
from __future__ import annotations

import time
from pathlib import Path

from perception_nodes.cli.common import emit
from perception_nodes.evaluation.detection import parse_seeds

DEFAULT_EMBEDDER = "reid-fleet"
EVAL_SEEDS = "2000-2001"     # held out: no training or tuning step sees them
TUNING_SEED = 1099           # the embedder's validation seed; re-ranking weights were set on it too


def _evaluate(scene: str, seeds: list[int], embedders: list[str], log=print, stage_sets=None,
              per_seed: dict | None = None) -> dict:
    import numpy as np

    from perception_nodes.evaluation.retrieval import evaluate_embedder, sightings
    from perception_nodes.retrieval.embedders import load_embedder
    from perception_nodes.world import load_scene

    duration = load_scene(scene).duration_s
    if per_seed is None:
        per_seed = {seed: sightings(scene, seed, log=log) for seed in seeds}
    results = {}
    for ref in embedders:
        embedder = load_embedder(ref)
        runs = [evaluate_embedder(items, embedder, duration, stage_sets=stage_sets, seed=seed)
                for seed, items in per_seed.items()]
        merged = {"embedder": embedder.name, "dim": runs[0]["dim"], "sightings": sum(r["sightings"] for r in runs),
                  "stages": {}}
        for stage in runs[0]["stages"]:
            entry = {}
            for part in ("vehicles", "persons"):
                values = [r["stages"][stage][part] for r in runs if r["stages"][stage][part]["queries"]]
                weights = [v["queries"] for v in values]
                entry[part] = {key: round(float(np.average([v[key] for v in values], weights=weights)), 4)
                               if values else None for key in ("map", "r1", "r5", "r10")}
                entry[part]["queries"] = int(sum(weights))
            dio = [r["stages"][stage]["drive_in_out"] for r in runs if r["stages"][stage]["drive_in_out"]["queries"]]
            n = sum(d["queries"] for d in dio)
            entry["drive_in_out"] = {"r1": round(sum(d["r1"] * d["queries"] for d in dio) / n, 4) if n else None,
                                     "queries": n}
            merged["stages"][stage] = entry
        results[ref] = merged
    return results


def run_eval(args) -> int:
    seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds)
    embedders = [e.strip() for e in args.embedders.split(",") if e.strip()]
    started = time.perf_counter()
    results = _evaluate(args.scene, seeds, embedders)
    for ref, res in results.items():
        print(f"[eval] {ref} ({res['dim']}-d, {res['sightings']} sightings)")
        print(f"[eval]   {'stages':16s} {'veh mAP':>8s} {'veh R@1':>8s} {'R@5':>6s} {'R@10':>6s} "
              f"{'per mAP':>8s} {'per R@1':>8s} {'in/out R@1':>10s}")
        for stage, e in res["stages"].items():
            v, p, d = e["vehicles"], e["persons"], e["drive_in_out"]
            print(f"[eval]   {stage:16s} {v['map']!s:>8s} {v['r1']!s:>8s} {v['r5']!s:>6s} {v['r10']!s:>6s} "
                  f"{p['map']!s:>8s} {p['r1']!s:>8s} {d['r1']!s:>10s}")
    primary = results[embedders[-1]]
    baseline = results[embedders[0]]
    best = primary["stages"]["all"]
    alone = primary["stages"]["embedding"]
    out = {
        "scene": args.scene, "seeds": seeds, "embedder": primary["embedder"],
        "map": best["vehicles"]["map"], "r1": best["vehicles"]["r1"], "r5": best["vehicles"]["r5"],
        "r10": best["vehicles"]["r10"], "drive_in_out_r1": best["drive_in_out"]["r1"],
        "persons": best["persons"],
        "stages": {name: {"map": e["vehicles"]["map"], "r1": e["vehicles"]["r1"],
                          "drive_in_out_r1": e["drive_in_out"]["r1"]} for name, e in primary["stages"].items()},
        "rerank_gain_map": round(best["vehicles"]["map"] - alone["vehicles"]["map"], 4),
        "baseline": {"embedder": baseline["embedder"], "map": baseline["stages"]["embedding"]["vehicles"]["map"],
                     "map_all": baseline["stages"]["all"]["vehicles"]["map"],
                     "drive_in_out_r1": baseline["stages"]["all"]["drive_in_out"]["r1"]},
        "embedder_gain_map": round(alone["vehicles"]["map"] - baseline["stages"]["embedding"]["vehicles"]["map"], 4),
        "ratio_map_vs_baseline": round(alone["vehicles"]["map"] / max(baseline["stages"]["embedding"]["vehicles"]
                                                                       ["map"], 1e-9), 3),
        "results": results, "seconds": round(time.perf_counter() - started, 1)}
    emit(out)
    return 0


def run_train(args) -> int:
    from perception_nodes.detection.registry import ModelEntry, ModelRegistry, sha256_of
    from perception_nodes.fileio import atomic_write_text
    from perception_nodes.reid.training import EmbedderTrainingConfig, train_embedder
    from perception_nodes.retrieval.embedders import EMBEDDER_BACKEND

    train_seeds = tuple(parse_seeds(args.train_seeds))
    eval_seeds = parse_seeds(args.eval_seeds)
    overlap = set(train_seeds) & (set(eval_seeds) | {args.val_seed})
    if overlap:
        raise SystemExit(f"train embedder: training seeds {sorted(overlap)} are also validation/evaluation seeds")
    cfg = EmbedderTrainingConfig(scene=args.scene, train_seeds=train_seeds, val_seed=args.val_seed,
                                 epochs=args.epochs, duration_s=args.duration, threads=args.threads, dim=args.dim,
                                 input_size=args.input_size)
    registry = ModelRegistry()
    models_dir = registry.root
    file_name = f"{args.name}-{args.version}.onnx"
    summary = train_embedder(cfg, Path(args.work), models_dir / file_name, resume=args.resume)
    ref = f"{args.name}@{args.version}"
    entry = ModelEntry(args.name, str(args.version), models_dir / file_name, sha256_of(models_dir / file_name),
                       ["car", "truck", "person", "bicycle"], cfg.input_size,
                       {"val_vehicle_map": summary["history"][-1]["val_vehicle_map"], "val_seed": cfg.val_seed},
                       f"{args.name}-{args.version}.md", backend=EMBEDDER_BACKEND)
    registry.add(entry)
    evaluation = None
    if not args.no_eval:
        stage_sets = {"embedding": (), "all": "all"}
        evaluation = _evaluate(args.scene, eval_seeds, ["hsv-hist", ref], stage_sets=stage_sets)
        entry.metrics.update({"eval_seeds": eval_seeds, "vehicle_map": evaluation[ref]["stages"]["embedding"]
                              ["vehicles"]["map"], "hsv_hist_vehicle_map": evaluation["hsv-hist"]["stages"]
                              ["embedding"]["vehicles"]["map"]})
        registry.add(entry)
    atomic_write_text(models_dir / entry.card, _card(entry, cfg, summary, evaluation, args))
    emit({"model": ref, "file": str(entry.file), **summary, "evaluation": evaluation})
    return 0


def run_export(args) -> int:
    """Register the OpenVINO variant of an ONNX embedder, measure it against the source on the same held-out
    sightings (accuracy of the embedding alone, crops per second interleaved) and write both into the card."""
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.evaluation.retrieval import sightings
    from perception_nodes.fileio import atomic_write_text
    from perception_nodes.retrieval.embedder_variants import (quantize_int8_embedder, register_openvino_embedder,
                                                              time_embedders, update_variants_section, variant_row)
    from perception_nodes.retrieval.embedders import OPENVINO_EMBEDDER_BACKEND, load_embedder

    started = time.perf_counter()
    registry = ModelRegistry()
    source = registry.resolve(args.model)
    seeds = parse_seeds(args.eval_seeds)
    tuning = {int(source.metrics["val_seed"])} if "val_seed" in source.metrics else set()
    if set(seeds) & tuning:
        raise SystemExit(f"--eval-seeds {sorted(set(seeds) & tuning)} include the embedder's validation seed")
    if args.precision == "int8":
        calibration = parse_seeds(args.calibration_seeds)
        held = set(calibration) & (set(seeds) | tuning)
        if held:
            raise SystemExit(f"--calibration-seeds {sorted(held)} are evaluation or validation seeds")
        crops = [s.crop for seed in calibration for s in sightings(args.scene, seed, log=print)]
        step = max(1, len(crops) // max(1, args.calibration_crops))
        variant = quantize_int8_embedder(source.ref, crops[::step][: args.calibration_crops], registry)
    else:
        variant = register_openvino_embedder(source.ref, args.precision, registry)
    embedder = load_embedder(variant.ref)
    out = {"model": variant.ref, "source": source.ref, "file": str(variant.file), "sha256": variant.sha256,
           "backend": variant.backend, "precision": variant.precision, "precision_run": embedder.precision,
           "runtime": embedder.runtime, "note": embedder.note}
    if not args.no_eval:
        per_seed = {seed: sightings(args.scene, seed, log=print) for seed in seeds}
        results = _evaluate(args.scene, seeds, [source.ref, variant.ref], stage_sets={"embedding": ()},
                            per_seed=per_seed)
        crops = [s.crop for items in per_seed.values() for s in items][: args.timing_crops]
        speed = time_embedders({source.ref: load_embedder(source.ref), variant.ref: embedder}, crops, args.rounds)
        mine, theirs = results[variant.ref]["stages"]["embedding"], results[source.ref]["stages"]["embedding"]
        variant.metrics = {
            "eval_seeds": seeds, "vehicle_map": mine["vehicles"]["map"], "vehicle_r1": mine["vehicles"]["r1"],
            "person_map": mine["persons"]["map"], "drive_in_out_r1": mine["drive_in_out"]["r1"],
            "source_vehicle_map": theirs["vehicles"]["map"], "source_vehicle_r1": theirs["vehicles"]["r1"],
            "source_person_map": theirs["persons"]["map"],
            "source_drive_in_out_r1": theirs["drive_in_out"]["r1"], "precision_run": embedder.precision,
            "crops_per_s": speed[variant.ref]["crops_per_s"],
            "source_crops_per_s": speed[source.ref]["crops_per_s"],
            "ratio_vs_onnxruntime": round(speed[variant.ref]["crops_per_s"] / speed[source.ref]["crops_per_s"], 2),
            "timing_crops": len(crops)}
        registry.add(variant)
        out.update({"metrics": variant.metrics, "speed": speed,
                    "map_change": round(mine["vehicles"]["map"] - theirs["vehicles"]["map"], 4)})
        print(f"[export] {variant.ref}: vehicle mAP {mine['vehicles']['map']} (ONNX Runtime "
              f"{theirs['vehicles']['map']}), {speed[variant.ref]['crops_per_s']} crops/s (ONNX Runtime "
              f"{speed[source.ref]['crops_per_s']}), x{variant.metrics['ratio_vs_onnxruntime']}")
    if source.card:
        card = registry.root / source.card
        variants = [e for e in registry.entries if e.backend == OPENVINO_EMBEDDER_BACKEND and e.version ==
                    source.version and e.card == source.card and e.metrics]
        if card.is_file() and variants:
            atomic_write_text(card, update_variants_section(card.read_text(encoding="utf-8"),
                                                            [variant_row(e) for e in variants]))
    out["wall_s"] = round(time.perf_counter() - started, 1)
    emit(out)
    return 0


def _card(entry, cfg, summary, evaluation, args) -> str:
    lines = [f"# {entry.ref}: appearance embedder (model card)", "",
             "Metric-learning embedder for re-identification across cameras, trained here on crops of the synthetic "
             f"world's `{cfg.scene}` scene (realistic fleet colours, body types, plates; people in shared clothing).",
             "", "## Training", "",
             f"- Command: `perception train embedder --scene {cfg.scene} --name {entry.name} --version "
             f"{entry.version} --train-seeds {args.train_seeds} --val-seed {cfg.val_seed} --epochs {cfg.epochs}`",
             f"- Identities: (seed, actor) pairs of seeds {list(cfg.train_seeds)}, first {cfg.duration_s:.0f} s: "
             f"{summary['identities']} identities, {summary['train_crops']} crops (best per camera per 1 s).",
             f"- Validation: seed {cfg.val_seed} ({summary['val_crops']} crops), vehicle cross-camera mAP per epoch.",
             f"- Network: 4 residual-free conv blocks (32-192 channels) on {cfg.input_size}x{cfg.input_size} RGB, "
             f"avg+max pooling, {cfg.dim}-d projection, BN neck; batch-hard triplet + label-smoothed CE; "
             f"P x K = {cfg.identities_per_batch} x {cfg.crops_per_identity}; Adam, cosine decay.",
             f"- Time: {summary['seconds']:.0f} s on this machine's CPU.", "",
             "| epoch | loss | val vehicle mAP |", "|---|---|---|"]
    lines += [f"| {h['epoch']} | {h['loss']} | {h['val_vehicle_map']} |" for h in summary["history"][-5:]]
    if evaluation:
        lines += ["", f"## Evaluation (held-out seeds {args.eval_seeds}, `perception eval retrieval --scene "
                      f"{cfg.scene} --seeds {args.eval_seeds}`)", "",
                  "| embedder | stages | vehicle mAP | vehicle R@1 | person mAP | drive-in/out R@1 |", "|---|---|---|---|---|---|"]
        for ref, res in evaluation.items():
            for stage, e in res["stages"].items():
                lines.append(f"| {ref} | {stage} | {e['vehicles']['map']} | {e['vehicles']['r1']} | "
                             f"{e['persons']['map']} | {e['drive_in_out']['r1']} |")
    lines += ["", "## Limits", "",
              "- Trained on synthetic cuboid actors only; on real footage it must be re-trained or replaced by a "
              "user-supplied ONNX embedder registered in models/manifest.yaml (backend: onnx-embedder).", ""]
    return "\n".join(lines)


def add_parsers(sub, eval_sub, bench_sub, train_sub, export_sub) -> None:
    add_bench_parser(bench_sub)
    ex = export_sub.add_parser("embedder", help="register an ONNX embedder's OpenVINO variant as "
                                                "<name>-ov-<precision>@V, measured against it on held-out seeds")
    ex.add_argument("--model", default=DEFAULT_EMBEDDER, help="name@version of an onnx-embedder entry")
    ex.add_argument("--format", choices=("openvino",), default="openvino")
    ex.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                    help="OpenVINO inference precision (bf16 runs on CPUs with AVX512-BF16 or AMX, else FP32; int8: "
                         "NNCF post-training quantisation on crops of --calibration-seeds)")
    ex.add_argument("--calibration-seeds", default="1000-1002",
                    help="int8: training seeds of --scene the calibration crops come from (never evaluation seeds)")
    ex.add_argument("--calibration-crops", type=int, default=300, help="int8: calibration crops")
    ex.add_argument("--scene", default="fleet")
    ex.add_argument("--eval-seeds", default=EVAL_SEEDS, help="held-out seeds (never the embedder's validation seed)")
    ex.add_argument("--timing-crops", type=int, default=1024, help="crops of those seeds timed per round")
    ex.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median)")
    ex.add_argument("--no-eval", action="store_true", help="register without measuring")
    ex.set_defaults(func=run_export)
    ev = eval_sub.add_parser("retrieval", help="cross-camera retrieval mAP/R@k, drive-in/drive-out, each "
                                               "re-ranking stage, hsv-hist vs the learned embedder")
    ev.add_argument("--scene", default="fleet")
    ev.add_argument("--seed", type=int, default=None, help="one seed (default: the held-out --seeds)")
    ev.add_argument("--seeds", default=EVAL_SEEDS)
    ev.add_argument("--embedders", default=f"hsv-hist,{DEFAULT_EMBEDDER}",
                    help="baseline first, the embedder under test last")
    ev.set_defaults(func=run_eval)

    tr = train_sub.add_parser("embedder", help="metric learning on crops of the synthetic world; ONNX, registered "
                                               "with a card")
    tr.add_argument("--scene", default="fleet")
    tr.add_argument("--name", default=DEFAULT_EMBEDDER)
    tr.add_argument("--version", required=True)
    tr.add_argument("--work", default="runs/train_embedder")
    tr.add_argument("--train-seeds", default="1000-1019")
    tr.add_argument("--val-seed", type=int, default=TUNING_SEED)
    tr.add_argument("--eval-seeds", default=EVAL_SEEDS)
    tr.add_argument("--epochs", type=int, default=40)
    tr.add_argument("--duration", type=float, default=120.0, help="seconds of each training seed")
    tr.add_argument("--dim", type=int, default=128)
    tr.add_argument("--input-size", type=int, default=64)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--resume", action="store_true", help="continue from the work folder's checkpoint")
    tr.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation for the card")
    tr.set_defaults(func=run_train)


def run_bench(args) -> int:
    from perception_nodes.evaluation.retrieval_bench import bench_retrieval
    from perception_nodes.retrieval.backends import parse_ann_kind

    dim = args.dim
    if dim is None:
        from perception_nodes.retrieval.embedders import load_embedder

        dim = load_embedder(args.embedder).dim
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    ef_sweep = tuple(int(v) for v in args.ef_search.split(",")) if args.ef_search else ()
    probe_sweep = tuple(float(v) for v in args.probe_share.split(",")) if args.probe_share else ()
    ann_kinds = tuple(parse_ann_kind(v) for v in args.ann.split(","))
    emit(bench_retrieval(sizes, dim, args.queries, int(float(args.milvus_max)), int(float(args.insert_items)),
                         ef_sweep, ann_kinds, probe_sweep, milvus_uri=args.milvus_uri))
    return 0


def add_bench_parser(bench_sub) -> None:
    be = bench_sub.add_parser("retrieval", help="query latency p50/p99 and recall@10 against exact search at "
                                                "1e4..1e6 vectors, filtered 1 %/0.1 %, inserts/s, re-ranking "
                                                "cost; FAISS and Milvus side by side")
    be.add_argument("--sizes", default="1e4,1e5,1e6")
    be.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="its dimension is benchmarked")
    be.add_argument("--dim", type=int, default=None, help="override the dimension")
    be.add_argument("--queries", type=int, default=300)
    be.add_argument("--milvus-max", default="1e5", help="largest size also run on Milvus (milvus-lite)")
    be.add_argument("--milvus-uri", default="", help="a Milvus server or cluster to measure instead of milvus-lite, "
                                                     "e.g. http://127.0.0.1:19530 (a collection per size, dropped)")
    be.add_argument("--insert-items", default="5e4")
    be.add_argument("--ef-search", default="", help="comma list: also sweep HNSW efSearch (unfiltered) at "
                                                    "each size that uses the graph, e.g. 64,128,256,512")
    be.add_argument("--ann", default="ivf,hnsw", help="approximate indexes built and measured at the sizes that use "
                                                      "one, the first reported as `faiss` (the default: ivf)")
    be.add_argument("--probe-share", default="", help="comma list: also sweep the share of IVF cells a query "
                                                      "scans (unfiltered), e.g. 0.03125,0.0625,0.125")
    be.set_defaults(func=run_bench)
