"""Runtime variants of a registered embedder: the same ONNX file run by OpenVINO Runtime at a precision.

``register_openvino_embedder("reid-fleet@1", "bf16")`` registers ``reid-fleet-ov-bf16@1`` (backend
``openvino-embedder``, the source's file and sha256); ``time_embedders`` measures crops per second of several
embedders on the same crops, interleaved; ``update_variants_section`` writes the variants' figures into the
source's model card. A variant is its own embedder version for the retrieval index (items of different
versions are never compared), so switching a running index to a variant means re-embedding, as for any new
version.
"""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.detection.export import OPENVINO_INFIX   # the detector variants' naming, shared
from perception_nodes.detection.registry import ModelEntry, ModelError, ModelRegistry
from perception_nodes.reid.learned import OPENVINO_PRECISIONS

VARIANTS_HEADING = "## Runtime variants"


def openvino_embedder_name(name: str, precision: str) -> str:
    """``reid-fleet`` + bf16 -> ``reid-fleet-ov-bf16``."""
    return f"{name}{OPENVINO_INFIX}{precision}"


def register_openvino_embedder(ref: str, precision: str, registry: ModelRegistry | None = None,
                               metrics: dict | None = None) -> ModelEntry:
    """Register the OpenVINO variant of an ONNX Runtime embedder entry at ``precision`` (fp32 or bf16): the same
    file (same sha256), read by OpenVINO Runtime; ``metrics`` are stored with it (its own measured figures)."""
    from perception_nodes.retrieval.embedders import EMBEDDER_BACKEND, OPENVINO_EMBEDDER_BACKEND

    registry = registry or ModelRegistry()
    entry, path = registry.verified_path(ref)
    if entry.backend != EMBEDDER_BACKEND:
        raise ModelError(f"{entry.ref} is a {entry.backend} model; OpenVINO variants are made from an ONNX "
                         f"embedder ({EMBEDDER_BACKEND})")
    if path.suffix != ".onnx":
        raise ModelError(f"{entry.ref} is {path.suffix}; OpenVINO variants are made from an ONNX file")
    if precision not in OPENVINO_PRECISIONS or precision == "int8":
        raise ModelError(f"precision {precision!r}: fp32 or bf16 (int8 needs a quantised model: "
                         "quantize_int8_embedder)")
    variant = ModelEntry(openvino_embedder_name(entry.name, precision), entry.version, path, entry.sha256,
                         list(entry.classes), entry.input_size, dict(metrics or {}), entry.card,
                         backend=OPENVINO_EMBEDDER_BACKEND, precision=precision)
    registry.add(variant)
    return variant


def quantize_int8_embedder(ref: str, calibration_crops: list[np.ndarray], registry: ModelRegistry | None = None,
                           metrics: dict | None = None) -> ModelEntry:
    """Post-training INT8 quantisation of an ONNX embedder entry with NNCF on ``calibration_crops`` (BGR crops of
    training seeds, never evaluation seeds), written beside it as OpenVINO IR (``<stem>-int8.xml`` + ``.bin``, both
    sha256-checked at load) and registered as ``<name>-ov-int8@V``."""
    from perception_nodes.detection.export import save_int8_ir
    from perception_nodes.detection.registry import sha256_of
    from perception_nodes.reid.learned import preprocess
    from perception_nodes.retrieval.embedders import EMBEDDER_BACKEND, OPENVINO_EMBEDDER_BACKEND

    registry = registry or ModelRegistry()
    entry, path = registry.verified_path(ref)
    if entry.backend != EMBEDDER_BACKEND or path.suffix != ".onnx":
        raise ModelError(f"{entry.ref} is not an ONNX embedder; quantise the ONNX Runtime entry")
    if not calibration_crops:
        raise ModelError("INT8 quantisation needs calibration crops")
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise ModelError(f"INT8 quantisation needs nncf and openvino ({exc})") from None
    size = entry.input_size
    dataset = nncf.Dataset(list(calibration_crops), lambda crop: preprocess(crop, size)[None])
    try:
        model = ov.Core().read_model(str(path))
        quantized = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED,
                                  subset_size=len(calibration_crops))
    except Exception as exc:  # noqa: BLE001 - NNCF and OpenVINO raise many kinds
        raise ModelError(f"quantising {entry.ref} failed: {type(exc).__name__}: {exc}") from None
    target = save_int8_ir(quantized, path)
    variant = ModelEntry(openvino_embedder_name(entry.name, "int8"), entry.version, target, sha256_of(target),
                         list(entry.classes), entry.input_size, dict(metrics or {}), entry.card,
                         backend=OPENVINO_EMBEDDER_BACKEND, precision="int8",
                         extra_files={target.with_suffix(".bin").name: sha256_of(target.with_suffix(".bin"))})
    registry.add(variant)
    return variant


def time_embedders(embedders: dict, crops: list[np.ndarray], rounds: int = 3) -> dict[str, dict]:
    """Seconds per crop of each embedder (``{label: embedder}``) on the same crops in batches of 64, interleaved
    over ``rounds`` rounds (the machine's speed drifts; interleaving gives every embedder the same drift); the
    median round per embedder, as crops per second and p50 ms per 64-crop batch."""
    if not crops:
        raise ValueError("time_embedders needs crops")
    for embedder in embedders.values():
        embedder.embed_crops(crops[:64])  # first runs compile kernels and allocate
    per_round: dict[str, list[float]] = {label: [] for label in embedders}
    per_batch: dict[str, list[float]] = {label: [] for label in embedders}
    for _ in range(max(1, int(rounds))):
        for label, embedder in embedders.items():
            started = time.perf_counter()
            for start in range(0, len(crops), 64):
                batch_started = time.perf_counter()
                embedder.embed_crops(crops[start:start + 64])
                per_batch[label].append(time.perf_counter() - batch_started)
            per_round[label].append(time.perf_counter() - started)
    return {label: {"crops_per_s": round(len(crops) / float(np.median(seconds)), 1),
                    "batch64_p50_ms": round(1e3 * float(np.median(per_batch[label])), 2)}
            for label, seconds in per_round.items()}


def update_variants_section(card_text: str, rows: list[str]) -> str:
    """The card with its runtime-variants section replaced by ``rows`` (appended when it has none)."""
    section = [VARIANTS_HEADING, "",
               "OpenVINO Runtime on the same ONNX file (fp32, bf16) or on an NNCF-quantised IR beside it (int8); figures "
               "from `perception export embedder --format openvino --precision P`, each measured against this model "
               "on ONNX Runtime in the same run "
               "(held-out seeds, the embedding alone, no re-ranking; crops per second on one thread, interleaved).",
               "", "| variant | precision run | vehicle mAP | vehicle R@1 | person mAP | drive-in/out R@1 | crops/s | "
               "x ONNX Runtime |", "|---|---|---|---|---|---|---|---|", *rows, ""]
    lines = card_text.rstrip("\n").split("\n")
    if VARIANTS_HEADING in lines:
        start = lines.index(VARIANTS_HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + section + lines[end:]
    else:
        lines = lines + [""] + section
    return "\n".join(lines).rstrip("\n") + "\n"


def variant_row(entry: ModelEntry) -> str:
    m = entry.metrics
    return (f"| `{entry.ref}` | {m.get('precision_run', entry.precision)} | {m.get('vehicle_map')} "
            f"(ONNX Runtime {m.get('source_vehicle_map')}) | {m.get('vehicle_r1')} | {m.get('person_map')} | "
            f"{m.get('drive_in_out_r1')} | {m.get('crops_per_s')} | x{m.get('ratio_vs_onnxruntime')} |")
