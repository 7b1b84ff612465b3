"""Segmentation jobs on disk and the worker pool that runs them.

A job is a folder ``<results>/<32 hex id>/`` holding ``job.json`` (status and results,
written atomically), ``input/`` (the checked upload) and ``output/`` (exactly what
``gliomaseg segment`` writes for that input, through :func:`gliomaseg.segmentation.segment`)
and ``viewer/<k>.npz`` (display image and label map of case ``k``, for the page's slice
viewer). Jobs survive a restart: queued or interrupted ones are run again; finished ones
expire ``ttl`` seconds after they finish.
"""

from __future__ import annotations

import copy
import json
import math
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from ..data.base import Case, WriteOptions, detect_dataset
from ..errors import GliomasegError
from ..inference.predictor import Prediction, Predictor
from ..models.weights import DEFAULT_BUNDLED
from .uploads import remove_tree

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class QueueFull(Exception):
    """The job queue is full; the client should retry later."""


@dataclass(frozen=True)
class Options:
    """A job's inference options: a loaded model's name (``None``: the one for the input's
    dataset type), TTA mode and post-processing (``None``: the model's own)."""

    model: str | None = None
    tta: str | None = None
    postprocess: str | None = None


def display_image(case: Case) -> np.ndarray:
    """The image the viewer shows: ``(H, W, S, 3)`` uint8 RGB for 3-channel slice images
    (kaggle_3m's pre-contrast, FLAIR, post-contrast as red, green, blue, as in its TIFFs),
    else the FLAIR channel (or the first) scaled from its 0.5-99.5 percentiles to 0-255,
    ``(*spatial, 1)``."""
    images = case.images
    if not np.issubdtype(images.dtype, np.floating) and images.shape[0] == 3:
        return np.moveaxis(images, 0, -1).astype(np.uint8)
    names = [c.lower() for c in case.channels]
    index = next((i for i, c in enumerate(names) if "flair" in c or c == "t2f"), 0)
    channel = images[index].astype(np.float32)
    low, high = np.percentile(channel, (0.5, 99.5))
    scaled = np.clip((channel - low) / max(float(high - low), 1e-6) * 255, 0, 255)
    return scaled.astype(np.uint8)[..., None]


def case_summary(case: Case, label: np.ndarray) -> dict:
    """Figures of one segmented case: per-slice areas (pixels, or mm² with spacing) and
    volumes per label value and region (voxels, and mL where the spacing is known)."""
    spacing = case.spacing
    voxel_ml = case.voxel_ml
    pixel_mm2 = float(spacing[0] * spacing[1]) if spacing else None
    regions = case.labels.to_regions(label)
    per_region = {}
    for name, region in zip(case.labels.regions, regions):
        voxels = int(region.sum())
        per_region[name] = {"voxels": voxels, "ml": round(voxels * voxel_ml, 3) if voxel_ml else None,
                            "slice_area_pixels": [int(a) for a in region.reshape(-1, region.shape[-1]).sum(0)]}
        if pixel_mm2:
            per_region[name]["slice_area_mm2"] = [round(a * pixel_mm2, 2) for a in per_region[name]["slice_area_pixels"]]
    values = [int(v) for v in np.unique(label) if v]
    return {"id": case.id, "dataset": case.dataset, "shape": list(case.spatial_shape), "slices": case.spatial_shape[-1],
            "spacing_mm": list(spacing) if spacing else None, "volumetric": spacing is not None,
            "regions": per_region, "label_values": values}


def add_metrics(uploaded: Path, cases: list[dict], predicted: dict[str, np.ndarray]) -> None:
    """Where the upload holds a case's ground truth (kaggle_3m ``_mask`` slices, a BraTS
    ``_seg`` file), add ``metrics`` to its summary: the row ``gliomaseg evaluate`` writes for
    it (Dice, IoU, ..., HD95 in pixels; BraTS: per region, HD95 in mm); NaN as ``None``.
    Cases without a ground truth are left as they are."""
    from ..evaluation import Evaluation

    try:
        dataset = detect_dataset(uploaded)
        refs = [ref for ref in dataset.find(uploaded, require_labels=True, problems=[]) if ref.id in predicted]
    except GliomasegError:
        return
    by_id = {case["id"]: case for case in cases}
    for ref in refs:
        evaluation = Evaluation(dataset)
        try:
            evaluation.add(dataset.load(ref), predicted[ref.id])
        except GliomasegError:
            continue
        if not evaluation.per_case:  # loose slices: no per-case row
            continue
        row = evaluation.per_case[0]
        by_id[ref.id]["metrics"] = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                    for k, v in row.items() if k != dataset.case_noun}


class JobStore:
    """Jobs under ``root`` and a pool of ``workers`` threads running them, at most
    ``max_queue`` waiting or running at once.

    Args:
        predictors: loaded models by name (warm; shared by the workers, read-only).
        ttl: seconds a finished job is kept.
    """

    def __init__(self, root: Path, predictors: dict[str, Predictor], workers: int, max_queue: int, ttl: float):
        self.root, self.predictors, self.max_queue, self.ttl = Path(root), predictors, max_queue, ttl
        self.root.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gliomaseg-job")
        self.workers = workers
        self.lock = threading.Lock()
        self.pending = 0
        self.recent_seconds = 1.0  # moving average of job durations, for Retry-After

    def folder(self, job_id: str) -> Path:
        """The folder of a job; ``job_id`` is checked to be 32 hex digits first.

        Raises:
            KeyError: not a job id, or no such job.
        """
        if not JOB_ID.match(job_id) or not (self.root / job_id / "job.json").is_file():
            raise KeyError(job_id)
        return self.root / job_id

    def read(self, job_id: str) -> dict:
        """The ``job.json`` record of a job. Raises ``KeyError`` for an unknown job."""
        return json.loads((self.folder(job_id) / "job.json").read_text())

    def _write(self, folder: Path, record: dict) -> None:
        write_text_atomic(folder / "job.json", json.dumps(record, indent=1))

    def reserve(self) -> None:
        """Take a queue slot before reading an upload.

        Raises:
            QueueFull: ``max_queue`` jobs are waiting or running.
        """
        with self.lock:
            if self.pending >= self.max_queue:
                raise QueueFull
            self.pending += 1

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's expected drain time (at least 1)."""
        return max(1, round(self.recent_seconds * self.pending / self.workers))

    def release(self) -> None:
        """Give back a slot taken by :meth:`reserve` (a job that was not submitted, or finished)."""
        with self.lock:
            self.pending -= 1

    def create(self) -> tuple[str, Path]:
        """A new job id and its (empty) input folder."""
        job_id = uuid.uuid4().hex
        (self.root / job_id / "input").mkdir(parents=True)
        return job_id, self.root / job_id / "input"

    def submit(self, job_id: str, options: Options) -> dict:
        """Queue job ``job_id`` (its input in place, a slot reserved) and return its record."""
        record = {"id": job_id, "status": QUEUED, "created": time.time(), "finished": None,
                  "options": options.__dict__, "model": None, "cases": [], "records": [], "problems": [], "error": None}
        self._write(self.root / job_id, record)
        self.pool.submit(self._run, job_id)
        return record

    def resume(self) -> int:
        """After a restart: run queued or interrupted jobs again (counted as pending), delete
        expired ones. Returns the number requeued."""
        self.expire()
        count = 0
        for folder in sorted(self.root.iterdir()):
            if not JOB_ID.match(folder.name) or not (folder / "job.json").is_file():
                continue
            record = json.loads((folder / "job.json").read_text())
            if record["status"] in (QUEUED, RUNNING):
                with self.lock:
                    self.pending += 1
                record["status"] = QUEUED
                self._write(folder, record)
                self.pool.submit(self._run, folder.name)
                count += 1
        return count

    def expire(self, now: float | None = None) -> int:
        """Delete jobs finished more than ``ttl`` seconds ago, and job folders left without a
        ``job.json`` (an upload cut off by a crash) older than that; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for folder in self.root.iterdir():
            if not JOB_ID.match(folder.name):
                continue
            try:
                finished = json.loads((folder / "job.json").read_text())["finished"]
            except FileNotFoundError:
                finished = folder.stat().st_mtime
            except (OSError, ValueError, KeyError):
                continue
            if finished is not None and now - finished > self.ttl:
                remove_tree(folder)
                removed += 1
        return removed

    def predictor_for(self, inputs: list[Path], options: Options) -> tuple[str, Predictor]:
        """The loaded model a job uses (named, or the one of the input's dataset type) with
        the job's TTA and post-processing.

        Raises:
            GliomasegError: unknown model, no model for the input's type, or bad options.
        """
        if options.model is not None:
            name = options.model
        else:
            kind = detect_dataset(inputs[0]).name
            default = DEFAULT_BUNDLED.get(kind)  # DICOM and NIfTI studies: the LGG model, as `gliomaseg segment`
            name = default if default in self.predictors else next(
                (n for n, p in self.predictors.items() if p.config.data.dataset == kind), None)
            if name is None:
                raise GliomasegError(f"no loaded model segments {kind} data; loaded: {', '.join(self.predictors)}")
        predictor = self.predictors[name]
        if options.tta is None and options.postprocess is None:
            return name, predictor
        config = copy.deepcopy(predictor.config)
        if options.tta is not None:
            config.inference.tta = options.tta
        if options.postprocess is not None:
            config.inference.postprocess = options.postprocess
        return name, Predictor(predictor.backend, config)

    def _run(self, job_id: str) -> None:
        from ..segmentation import segment

        folder = self.root / job_id
        record = json.loads((folder / "job.json").read_text())
        record["status"] = RUNNING
        self._write(folder, record)
        remove_tree(folder / "output")
        remove_tree(folder / "viewer")
        started = time.perf_counter()
        try:
            entries = sorted(p for p in (folder / "input").iterdir())
            inputs = entries if len(entries) == 1 else [folder / "input"]
            record["model"], predictor = self.predictor_for(inputs, Options(**record["options"]))
            viewer = folder / "viewer"
            viewer.mkdir()

            predicted: dict[str, np.ndarray] = {}

            def keep(case: Case, prediction: Prediction) -> None:
                index = len(record["cases"])
                predicted[case.id] = prediction.label
                with atomic_path(viewer / f"{index}.npz") as tmp, open(tmp, "wb") as handle:
                    np.savez(handle, image=display_image(case), label=prediction.label)
                record["cases"].append(case_summary(case, prediction.label))

            options = WriteOptions(model=f"{record['model']} ({predictor.config.model.name})")
            run = segment(inputs, folder / "output", predictor, options=options, on_case=keep)
            add_metrics(folder / "input", record["cases"], predicted)
            record["records"] = [_relative(r, folder) for r in run.records if r["type"] != "error"]
            record["problems"] = [f"{_relative_path(e.path, folder)}: {e.problem}" for e in run.problems]
            record["status"] = DONE if run.segmented else FAILED
            if not run.segmented:
                record["error"] = "; ".join(record["problems"]) or "nothing to segment in the upload"
        except GliomasegError as exc:
            record["status"], record["error"] = FAILED, _relative_path(str(exc), folder)
        except Exception as exc:  # noqa: BLE001  a worker must record every failure, not die silently
            record["status"], record["error"] = FAILED, f"internal error: {exc.__class__.__name__}"
        finally:
            record["seconds"] = round(time.perf_counter() - started, 3)
            self.recent_seconds = 0.8 * self.recent_seconds + 0.2 * record["seconds"]
            record["finished"] = time.time()
            self._write(folder, record)
            self.release()

    def shutdown(self) -> None:
        """Stop taking jobs; running ones finish (queued ones run again after a restart)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def _relative_path(text: str | Path, folder: Path) -> str:
    """``text`` with the server's job folders removed (clients see their own names only)."""
    text = str(text)
    for prefix in (folder / "input", folder / "output", folder):
        text = text.replace(f"{prefix}/", "").replace(str(prefix), ".")
    return text


def _relative(record: dict, folder: Path) -> dict:
    return {k: _relative_path(v, folder) if isinstance(v, str) else v for k, v in record.items()}
