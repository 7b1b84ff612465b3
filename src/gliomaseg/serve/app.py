"""The FastAPI application: the versioned REST API under ``/api/v1`` and the viewer page.

Models are loaded once (:class:`Settings` names them) and shared by the worker threads of a
:class:`~.jobs.JobStore`; the event loop only reads uploads and files. Every ``/api`` request
must carry ``Authorization: Bearer <token>`` when a token is set (always when the server
listens on anything but loopback, see :func:`check_binding`).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import ipaddress
import os
import zipfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from .. import __version__
from ..errors import GliomasegError
from .jobs import DONE, JobStore, Options, QueueFull
from .uploads import UploadError, group_volumes, remove_tree, save_upload

TTA_MODES = ("none", "flip", "flip+rot90")
STATIC = ("index.html", "app.js", "style.css")
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Error(BaseModel):
    """An error answer: what is wrong, in one line (naming the file where one is at fault)."""

    detail: str | list


ERRORS = {status: {"model": Error, "description": text} for status, text in {
    400: "bad upload or option", 401: "missing or wrong API token", 404: "unknown job, case, slice or asset",
    409: "job not done", 413: "upload too large", 415: "unsupported content", 422: "malformed request",
    503: "queue full (Retry-After) or not ready"}.items()}


@dataclass
class Settings:
    """What ``gliomaseg serve`` configures.

    Attributes:
        results: folder of the jobs (created; survives restarts).
        models: bundled names, weights files or run folders to load (loaded once at start).
        token: API token every ``/api`` request must carry, or ``None`` (loopback only).
        max_upload_mb: largest upload, MiB (zip contents count inflated).
        workers: inference threads; torch's intra-op threads are split among them.
        max_queue: jobs waiting or running before new ones get 503 with ``Retry-After``.
        ttl_hours: hours a finished job is kept.
        cors_origins: origins allowed by CORS; empty: CORS off.
    """

    results: Path
    models: list[str] = field(default_factory=lambda: ["lgg", "brats"])
    token: str | None = None
    max_upload_mb: float = 512
    workers: int = 1
    max_queue: int = 16
    ttl_hours: float = 24
    cors_origins: list[str] = field(default_factory=list)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with 413: at once where
    Content-Length says so, else as the bytes arrive (chunked uploads), before they are spooled."""

    def __init__(self, app, limit: int, megabytes: float):
        self.app, self.limit = app, limit
        self.detail = f"upload larger than the server's limit of {megabytes:g} MiB"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": self.detail}, 413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.detail)
            return message

        await self.app(scope, counted, send)


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen on a non-loopback address without a token.

    Raises:
        GliomasegError: ``host`` is not loopback and ``token`` is empty.
    """
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        raise GliomasegError(f"listening on {host} needs an API token: pass --token or set GLIOMASEG_TOKEN")


class JobInfo(BaseModel):
    """A job as the API reports it (``results`` endpoint adds cases and records)."""

    id: str
    status: str
    created: float
    finished: float | None
    model: str | None
    options: dict
    error: str | None
    seconds: float | None = None


def load_predictors(names: list[str]) -> dict:
    """Each named model loaded once: ``{name: Predictor}`` (key: the bundled name or the file's stem).

    Raises:
        InputError: a model that cannot be loaded.
    """
    from ..inference.predictor import Predictor

    return {Path(name).stem if Path(name).exists() else name: Predictor.from_path(name) for name in names}


def create_app(settings: Settings, predictors: dict | None = None) -> FastAPI:
    """The application. ``predictors``: already loaded models (tests), else ``settings.models`` are loaded."""
    if predictors is None:
        predictors = load_predictors(settings.models)
    store = JobStore(settings.results, predictors, settings.workers, settings.max_queue, settings.ttl_hours * 3600)
    limit = int(settings.max_upload_mb * 2**20)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.resume()

        async def expire_loop():
            while True:
                await asyncio.sleep(min(600.0, max(1.0, store.ttl / 4)))
                await asyncio.to_thread(store.expire)

        task = asyncio.create_task(expire_loop())
        yield
        task.cancel()
        await asyncio.to_thread(store.shutdown)

    app = FastAPI(title="gliomaseg", version=__version__, lifespan=lifespan,
                  description="Brain-tumor segmentation of MRI (LGG FLAIR slices, BraTS volumes) with warm models.")
    app.state.store = store
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization"])

    app.add_middleware(BodyLimit, limit=limit + 2**16, megabytes=settings.max_upload_mb)  # + room for multipart headers

    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), settings.token.encode()):
            raise HTTPException(401, "missing or wrong API token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    # the schema declares Bearer auth only where a token is set
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorised)] if settings.token else [], responses=ERRORS)

    def job_or_404(job_id: str) -> dict:
        try:
            return store.read(job_id)
        except KeyError:
            raise HTTPException(404, f"no job {job_id!r} (unknown, or expired)") from None

    def done_or_409(job_id: str) -> dict:
        record = job_or_404(job_id)
        if record["status"] != DONE:
            raise HTTPException(409, f"job {job_id} is {record['status']}" + (f": {record['error']}" if record["error"] else ""))
        return record

    @api.get("/health", summary="Liveness: the process answers")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @api.get("/ready", summary="Readiness: models loaded and a queue slot free")
    def ready() -> JSONResponse:
        free = store.max_queue - store.pending
        body = {"ready": free > 0, "models": list(predictors), "pending": store.pending, "max_queue": store.max_queue}
        return JSONResponse(body, 200 if free > 0 else 503)

    @api.get("/models", summary="Loaded models with their metadata")
    def models() -> list[dict]:
        from ..models.weights import bundled_models

        cards = bundled_models()
        return [{"name": name, "dataset": p.config.data.dataset, "network": p.config.model.name,
                 "in_channels": p.in_channels, "regions": list(p.dataset.labels.regions),
                 "tta": p.config.inference.tta, "postprocess": p.config.inference.postprocess, "card": cards.get(name, {})}
                for name, p in predictors.items()]

    @api.post("/jobs", status_code=202, response_model=JobInfo,
              summary="Submit a segmentation: slice images, NIfTI files, DICOM files, or a zip of a patient folder, BraTS case or DICOM series")
    async def submit(files: list[UploadFile] = File(..., description="Slice images (TIFF, PNG, JPEG, BMP), NIfTI files, DICOM files (any name) or one zip"),
                     model: str | None = Form(None, description="Loaded model name; default: the one for the input's dataset type"),
                     tta: str | None = Form(None, description="none, flip or flip+rot90; default: the model's"),
                     postprocess: str | None = Form(None, description="none, largest-3d or min-size:N; default: the model's")) -> dict:
        if model is not None and model not in predictors:
            raise HTTPException(400, f"unknown model {model!r}; loaded: {', '.join(predictors)}")
        if tta is not None and tta not in TTA_MODES:
            raise HTTPException(400, f"unknown tta {tta!r}; one of {', '.join(TTA_MODES)}")
        if postprocess is not None:
            from ..config import parse_postprocess

            try:
                parse_postprocess(postprocess)
            except GliomasegError as exc:
                raise HTTPException(400, str(exc)) from None
        try:
            store.reserve()
        except QueueFull:
            raise HTTPException(503, "the job queue is full; retry later", headers={"Retry-After": str(store.retry_after())}) from None
        job_id, folder = store.create()
        try:
            budget = [limit]
            for upload in files:
                await asyncio.to_thread(save_upload, upload.file, upload.filename or "", folder, budget)
            if not any(folder.iterdir()):
                raise UploadError("upload", "holds no image, NIfTI or zip file")
            group_volumes(folder)
        except UploadError as exc:
            store.release()
            remove_tree(folder.parent)
            raise HTTPException(exc.status, str(exc)) from None
        except BaseException:
            store.release()
            remove_tree(folder.parent)
            raise
        return store.submit(job_id, Options(model, tta, postprocess))

    @api.get("/jobs/{job_id}", response_model=JobInfo, summary="A job's status")
    def status(job_id: str) -> dict:
        return job_or_404(job_id)

    @api.get("/jobs/{job_id}/results", summary="Results: per case volumes and per-slice areas, results.jsonl records")
    def results(job_id: str) -> dict:
        record = done_or_409(job_id)
        return {k: record[k] for k in ("id", "status", "model", "options", "seconds", "cases", "records", "problems")}

    @api.get("/jobs/{job_id}/mask.zip", summary="Download the outputs `gliomaseg segment` writes (masks, overlays or label maps, results.jsonl)",
             response_class=Response, responses={200: {"content": {"application/zip": {}}}})
    def mask(job_id: str) -> Response:
        done_or_409(job_id)
        output = store.folder(job_id) / "output"

        def pack() -> bytes:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(p for p in output.rglob("*") if p.is_file()):
                    zf.write(path, path.relative_to(output).as_posix())
            return buffer.getvalue()

        return Response(pack(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="gliomaseg-{job_id}.zip"'})

    def viewer_slice(job_id: str, case: int, index: int) -> tuple[np.ndarray, np.ndarray, bool]:
        record = done_or_409(job_id)
        if not 0 <= case < len(record["cases"]):
            raise HTTPException(404, f"job {job_id} has {len(record['cases'])} case(s); no case {case}")
        summary = record["cases"][case]
        if not 0 <= index < summary["slices"]:
            raise HTTPException(404, f"case {case} has {summary['slices']} slices; no slice {index}")
        with np.load(store.folder(job_id) / "viewer" / f"{case}.npz") as data:
            return data["image"][..., index, :], data["label"][..., index], summary["volumetric"]

    def png(array: np.ndarray, volumetric: bool) -> Response:
        from PIL import Image

        if volumetric:  # voxel axes (X, Y): show rows as -Y, columns as X (radiological viewers' axial view)
            array = np.flip(np.swapaxes(array, 0, 1), 0)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    @api.get("/jobs/{job_id}/cases/{case}/slices/{index}/image.png", response_class=Response,
             summary="One slice of the input as the viewer shows it", responses={200: {"content": {"image/png": {}}}})
    def slice_image(job_id: str, case: int, index: int) -> Response:
        image, _, volumetric = viewer_slice(job_id, case, index)
        return png(image[..., 0] if image.shape[-1] == 1 else image, volumetric)

    @api.get("/jobs/{job_id}/cases/{case}/slices/{index}/label.png", response_class=Response,
             summary="One slice of the predicted label map (grey values = label values)", responses={200: {"content": {"image/png": {}}}})
    def slice_label(job_id: str, case: int, index: int) -> Response:
        _, label, volumetric = viewer_slice(job_id, case, index)
        return png(label, volumetric)

    app.include_router(api)

    def static(name: str) -> Response:
        text = (resources.files("gliomaseg.serve") / "static" / name).read_text()
        return Response(text, media_type=MEDIA[Path(name).suffix])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> Response:
        return static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such asset")
        return static(name)

    return app


def default_workers() -> int:
    """Inference threads for this machine: one per two cores (at least one), torch's
    intra-op threads split among them."""
    return max(1, (os.cpu_count() or 1) // 2)
