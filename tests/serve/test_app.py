"""The REST API through FastAPI's TestClient, on a real LGG patient: every endpoint, the
outputs against ``segment``'s, and bad requests (size, type, corrupt or unsafe zips, token,
unknown job, full queue), restart and expiry."""

from __future__ import annotations

import io
import json
import stat
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from cli_helpers import assert_no_traceback, error_lines, run_cli
from conftest import BRATS_TEST_CASES
from serve_helpers import zip_folder

from gliomaseg.errors import EXIT_ERROR, GliomasegError
from gliomaseg.segmentation import segment
from gliomaseg.serve.app import Settings, check_binding, create_app, load_predictors
from gliomaseg.serve.jobs import JobStore

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def predictors():
    return load_predictors(["lgg"])


@pytest.fixture(scope="module")
def patient_zip(patient_dir: Path) -> bytes:
    return zip_folder(patient_dir)


def make_client(tmp_path: Path, predictors, **settings) -> TestClient:
    return TestClient(create_app(Settings(results=tmp_path / "jobs", **settings), predictors))


def wait(client: TestClient, job_id: str, headers: dict | None = None, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished after {timeout} s")


def zip_bytes(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_patient_zip_end_to_end(tmp_path, predictors, patient_dir, patient_zip):
    """Submit, poll, results, viewer slices and mask zip; the zip holds exactly what
    ``segment`` writes for the same patient (bytes of every mask PNG equal)."""
    with make_client(tmp_path, predictors) as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 200 and ready.json()["models"] == ["lgg"]
        models = client.get("/api/v1/models").json()
        assert models[0]["name"] == "lgg" and models[0]["dataset"] == "kaggle3m" and models[0]["card"]

        response = client.post("/api/v1/jobs", files={"files": ("patient.zip", patient_zip, "application/zip")})
        assert response.status_code == 202, response.text
        job = wait(client, response.json()["id"])
        assert job["status"] == "done", job
        results = client.get(f"/api/v1/jobs/{job['id']}/results").json()
        slices = sorted(p for p in patient_dir.glob("*.tif") if not p.stem.endswith("_mask"))
        (case,) = results["cases"]
        assert case["id"] == patient_dir.name and case["slices"] == len(slices)
        assert str(tmp_path) not in json.dumps(results)  # no server path leaks

        expected = tmp_path / "expected"
        segment([patient_dir], expected, predictors["lgg"])
        archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/jobs/{job['id']}/mask.zip").content))
        masks = sorted(n for n in archive.namelist() if n.endswith("_mask.png"))
        assert len(masks) == len(slices)
        total = 0
        for name in masks:
            mine = np.asarray(Image.open(io.BytesIO(archive.read(name))))
            theirs = np.asarray(Image.open(expected / name))
            np.testing.assert_array_equal(mine, theirs)
            total += int((mine > 0).sum())
        assert total == case["regions"]["tumor"]["voxels"] > 0
        # the upload held the patient's _mask slices: Dice against them, from the formula
        truth = sum(int((np.asarray(Image.open(p.with_name(f"{p.stem}_mask.tif"))) > 0).sum()) for p in slices)
        entries = {Path(name).name: name for name in masks}
        overlap = sum(int(((np.asarray(Image.open(io.BytesIO(archive.read(entries[f"{p.stem}_mask.png"])))) > 0)
                           & (np.asarray(Image.open(p.with_name(f"{p.stem}_mask.tif"))) > 0)).sum()) for p in slices)
        assert case["metrics"]["dice"] == pytest.approx(2 * overlap / (total + truth), abs=1e-6)
        assert case["metrics"]["true_volume_voxels"] == truth
        area = case["regions"]["tumor"]["slice_area_pixels"]
        index = int(np.argmax(area))
        label = np.asarray(Image.open(io.BytesIO(client.get(f"/api/v1/jobs/{job['id']}/cases/0/slices/{index}/label.png").content)))
        assert int((label > 0).sum()) == area[index]
        image = Image.open(io.BytesIO(client.get(f"/api/v1/jobs/{job['id']}/cases/0/slices/{index}/image.png").content))
        assert image.size == (label.shape[1], label.shape[0]) and image.mode == "RGB"
        assert client.get(f"/api/v1/jobs/{job['id']}/cases/0/slices/{len(slices)}/image.png").status_code == 404
        assert client.get(f"/api/v1/jobs/{job['id']}/cases/1/slices/0/image.png").status_code == 404


def test_loose_slices_and_options(tmp_path, predictors, patient_dir):
    """Slice files sent as a multipart list, with TTA and post-processing options."""
    slices = sorted(p for p in patient_dir.glob("*.tif") if not p.stem.endswith("_mask"))[:3]
    files = [("files", (p.name, p.read_bytes(), "image/tiff")) for p in slices]
    with make_client(tmp_path, predictors) as client:
        response = client.post("/api/v1/jobs", files=files, data={"tta": "none", "postprocess": "none"})
        assert response.status_code == 202, response.text
        job = wait(client, response.json()["id"])
        assert job["status"] == "done", job
        assert job["options"] == {"model": None, "tta": "none", "postprocess": "none"}
        results = client.get(f"/api/v1/jobs/{job['id']}/results").json()
        assert "metrics" not in results["cases"][0]  # no ground truth uploaded
        records = results["records"]
        assert sorted(r["file"] for r in records if r["type"] == "slice") == sorted(p.name for p in slices)


@pytest.mark.parametrize("files, status, words", [
    ([("files", ("a.tif", b"not a tiff at all", "image/tiff"))], 415, "not the tiff"),
    ([("files", ("a.exe", b"MZ\x90\x00", "application/octet-stream"))], 415, "unsupported file type"),
    ([("files", ("../a.tif", b"II*\x00", "image/tiff"))], 400, "file names"),
    ([("files", ("a.zip", b"PK\x03\x04 corrupt", "application/zip"))], 400, "not a readable zip"),
    ([("files", ("a.zip", zip_bytes({"../evil.tif": b"II*\x00"}), "application/zip"))], 400, "zip slip"),
    ([("files", ("a.zip", zip_bytes({"p/a.tif": b"II*\x00"}, symlink="p/link.tif"), "application/zip"))], 400, "symbolic link"),
    ([("files", ("a.zip", zip_bytes({"p/a.tif": b"II*\x00" + bytes(20 * 2**20)}), "application/zip"))], 413, "zip bomb"),
    ([("files", ("a.zip", zip_bytes({"p/inner.zip": zip_bytes({"x.tif": b"II*\x00"})}), "application/zip"))], 400, "zip inside a zip"),
    ([("files", ("a.zip", zip_bytes({"__MACOSX/x.tif": b"II*\x00"}), "application/zip"))], 400, "holds no image"),
])
def test_bad_uploads(tmp_path, predictors, files, status, words):
    with make_client(tmp_path, predictors, max_upload_mb=16) as client:
        response = client.post("/api/v1/jobs", files=files)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
        assert not any((tmp_path / "jobs").iterdir())  # the rejected job's folder is gone
        assert client.app.state.store.pending == 0


def test_upload_limit(tmp_path, predictors, patient_dir):
    """Over the limit: by Content-Length, by the bytes of a chunked body (no length), and by
    the files' bytes when the body is just under the limit with multipart overhead."""
    slices = sorted(patient_dir.glob("*.tif"))[:4]
    files = [("files", (p.name, p.read_bytes(), "image/tiff")) for p in slices]
    with make_client(tmp_path, predictors, max_upload_mb=0.05) as client:
        response = client.post("/api/v1/jobs", files=files)
        assert response.status_code == 413 and "limit" in response.json()["detail"]
        boundary = "b0undary"
        chunks = iter([f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.tif\"\r\n\r\n".encode()]
                      + [b"II*\x00" + bytes(2**16)] * 4)
        response = client.post("/api/v1/jobs", content=chunks, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413 and "limit" in response.json()["detail"]
        assert not any((tmp_path / "jobs").iterdir()) and client.app.state.store.pending == 0
    with make_client(tmp_path, predictors, max_upload_mb=0.2) as client:  # body within limit + 64 KiB, files over
        response = client.post("/api/v1/jobs", files=[("files", ("a.tif", b"II*\x00" + bytes(int(0.2 * 2**20) + 10), "image/tiff"))])
        assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_bad_options_and_unknown_jobs(tmp_path, predictors):
    tiff = [("files", ("a.tif", b"II*\x00" + bytes(100), "image/tiff"))]
    with make_client(tmp_path, predictors) as client:
        assert client.post("/api/v1/jobs", files=tiff, data={"model": "nope"}).status_code == 400
        assert client.post("/api/v1/jobs", files=tiff, data={"tta": "sideways"}).status_code == 400
        assert client.post("/api/v1/jobs", files=tiff, data={"postprocess": "min-size:x"}).status_code == 400
        assert client.post("/api/v1/jobs").status_code == 422
        for path in ("", "/results", "/mask.zip", "/cases/0/slices/0/image.png"):
            assert client.get(f"/api/v1/jobs/{'0' * 32}{path}").status_code == 404
        assert client.get("/api/v1/jobs/..%2F..%2Fetc").status_code == 404
        # a corrupt slice: the job fails with a one-line error naming the file, no server path
        job = wait(client, client.post("/api/v1/jobs", files=tiff).json()["id"])
        assert job["status"] == "failed" and job["error"].startswith("a.tif:") and str(tmp_path) not in job["error"]
        assert client.get(f"/api/v1/jobs/{job['id']}/results").status_code == 409


def test_token(tmp_path, predictors):
    with make_client(tmp_path, predictors, token=TOKEN) as client:
        assert client.get("/api/v1/health").status_code == 401
        assert client.get("/api/v1/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/api/v1/jobs", files=[("files", ("a.tif", b"II*\x00", "image/tiff"))]).status_code == 401
        assert client.get("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/").status_code == 200  # the page holds no data; it asks for the token
    with pytest.raises(GliomasegError, match="token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", TOKEN)
    check_binding("127.0.0.1", None)
    check_binding("::1", None)


def test_queue_full_answers_503(tmp_path, predictors):
    with make_client(tmp_path, predictors, max_queue=2) as client:
        store = client.app.state.store
        store.reserve(), store.reserve()
        response = client.post("/api/v1/jobs", files=[("files", ("a.tif", b"II*\x00", "image/tiff"))])
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert client.get("/api/v1/ready").status_code == 503
        store.release(), store.release()
        assert client.get("/api/v1/ready").status_code == 200


def test_restart_runs_queued_jobs_and_keeps_finished(tmp_path, predictors, patient_dir):
    """A job queued when the server stopped runs after the restart; a finished one stays readable."""
    root = tmp_path / "jobs"
    store = JobStore(root, predictors, workers=1, max_queue=4, ttl=3600)
    job_id, folder = store.create()
    slice_file = sorted(patient_dir.glob("*_1.tif"))[0]
    (folder / slice_file.name).write_bytes(slice_file.read_bytes())
    record = {"id": job_id, "status": "running", "created": time.time(), "finished": None, "options":
              {"model": None, "tta": None, "postprocess": None}, "model": None, "cases": [], "records": [], "problems": [], "error": None}
    (root / job_id / "job.json").write_text(json.dumps(record))  # as left by a server killed mid-job
    with make_client(tmp_path, predictors) as client:
        assert wait(client, job_id)["status"] == "done"
    with make_client(tmp_path, predictors) as client:
        assert client.get(f"/api/v1/jobs/{job_id}/results").json()["cases"][0]["slices"] == 1


def test_expiry(tmp_path, predictors, patient_dir):
    slice_file = sorted(patient_dir.glob("*_1.tif"))[0]
    with make_client(tmp_path, predictors, ttl_hours=1) as client:
        job_id = client.post("/api/v1/jobs", files=[("files", (slice_file.name, slice_file.read_bytes(), "image/tiff"))]).json()["id"]
        wait(client, job_id)
        store = client.app.state.store
        _, cut_off = store.create()  # an upload cut off by a crash: a folder without job.json
        assert store.expire(now=time.time() + 1800) == 0
        assert store.expire(now=time.time() + 3601 + 60) == 2
        assert not cut_off.parent.exists()
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_cors_off_unless_configured(tmp_path, predictors):
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "GET"}
    with make_client(tmp_path, predictors) as client:
        response = client.get("/api/v1/health", headers={"Origin": "https://example.org"})
        assert "access-control-allow-origin" not in response.headers
    with make_client(tmp_path, predictors, cors_origins=["https://example.org"]) as client:
        response = client.options("/api/v1/health", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://example.org"


def test_page_assets_and_schema(tmp_path, predictors):
    with make_client(tmp_path, predictors) as client:
        page = client.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from the internet
        for name in ("app.js", "style.css"):
            assert client.get(f"/static/{name}").status_code == 200
        assert client.get("/static/..%2Fapp.py").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}/results", "/api/v1/jobs/{job_id}/mask.zip", "/api/v1/models",
                "/api/v1/health", "/api/v1/ready"} <= set(paths)


def test_serve_command_refuses_a_public_address_without_token(monkeypatch):
    monkeypatch.delenv("GLIOMASEG_TOKEN", raising=False)
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == EXIT_ERROR
    assert error_lines(result) == ["error: listening on 0.0.0.0 needs an API token: pass --token or set GLIOMASEG_TOKEN"]
    assert_no_traceback(result)


def test_brats_case_as_loose_nifti_files(tmp_path, brats_root):
    """The four sequences of a BraTS case sent as separate files (no zip, no ground truth):
    segmented as one case, its label map equal to ``segment``'s on the case folder."""
    import nibabel as nib

    case = brats_root / BRATS_TEST_CASES[0]
    sequences = sorted(p for p in case.iterdir() if not p.name.endswith("_seg.nii.gz"))
    predictors = load_predictors(["brats"])
    with make_client(tmp_path, predictors) as client:
        response = client.post("/api/v1/jobs", files=[("files", (p.name, p.read_bytes(), "application/gzip")) for p in sequences])
        assert response.status_code == 202, response.text
        job = wait(client, response.json()["id"])
        assert job["status"] == "done", job
        (summary,) = client.get(f"/api/v1/jobs/{job['id']}/results").json()["cases"]
        assert summary["id"] == case.name and "metrics" not in summary
        assert list(summary["regions"]) == ["WT", "TC", "ET"] and summary["regions"]["WT"]["ml"] > 0
        archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/jobs/{job['id']}/mask.zip").content))
        archive.extract(f"{case.name}_seg.nii.gz", tmp_path / "mine")
    segment([case], tmp_path / "expected", predictors["brats"])
    mine = np.asarray(nib.load(tmp_path / "mine" / f"{case.name}_seg.nii.gz").dataobj)
    np.testing.assert_array_equal(mine, np.asarray(nib.load(tmp_path / "expected" / f"{case.name}_seg.nii.gz").dataobj))
    voxel_ml = float(np.prod(summary["spacing_mm"])) / 1000
    assert summary["regions"]["WT"]["ml"] == pytest.approx((mine > 0).sum() * voxel_ml, abs=1e-3)


def test_dicom_series_zip_gives_segments_label_map_and_dicom_seg(tmp_path, predictors, patient_dir):
    """A real LGG patient's FLAIR as a DICOM series, zipped with file names that have no
    extension (as PACS exports do; known by their content): the job runs the LGG model (the
    default for DICOM studies), and the download holds a DICOM SEG and a NIfTI label map equal
    voxel for voxel to what ``segment`` writes for the same folder."""
    import nibabel as nib
    import pydicom
    import tifffile
    from dicom_series import Study, write_series

    files = sorted((p for p in patient_dir.glob("*.tif") if not p.stem.endswith("_mask")),
                   key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    flair = np.stack([tifffile.imread(f)[..., 1] for f in files], axis=-1).transpose(1, 0, 2).astype(np.float32)
    affine = np.array([[-0.94, 0, 0, 120.0], [0, -0.94, 0, 120.0], [0, 0, 3.3, -40.0], [0, 0, 0, 1]])
    series = tmp_path / "upload" / "study" / "flair"
    written = write_series(series, flair, affine, Study.new("lgg"), "AX FLAIR", 3)
    archive = zip_bytes({f"study/flair/IM{i:04d}": path.read_bytes() for i, path in enumerate(written)})
    with make_client(tmp_path, predictors) as client:
        response = client.post("/api/v1/jobs", files={"files": ("study.zip", archive, "application/zip")})
        assert response.status_code == 202, response.text
        job = wait(client, response.json()["id"])
        assert job["status"] == "done", job
        download = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/jobs/{job['id']}/mask.zip").content))
    names = download.namelist()
    (seg_name,) = [n for n in names if n.endswith("_seg.dcm")]
    (nifti_name,) = [n for n in names if n.endswith("_seg.nii.gz")]
    expected = tmp_path / "expected"
    segment([tmp_path / "upload" / "study"], expected, predictors["lgg"])
    (theirs,) = expected.glob("*_seg.nii.gz")
    (tmp_path / "mine.nii.gz").write_bytes(download.read(nifti_name))
    mine = np.asarray(nib.load(str(tmp_path / "mine.nii.gz")).dataobj)
    np.testing.assert_array_equal(mine, np.asarray(nib.load(str(theirs)).dataobj))
    assert mine.any()
    seg = pydicom.dcmread(io.BytesIO(download.read(seg_name)))
    assert seg.Modality == "SEG" and "lgg" in seg.SegmentSequence[0].SegmentAlgorithmName
