"""`gliomaseg segment` end to end on real files with the bundled model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

GLIOMASEG = str(Path(sys.executable).parent / "gliomaseg")


def test_segment_patient_folder_and_single_slice(patient_dir, tmp_path):
    """Masks are 0/255 at the input size, overlays RGB, results.jsonl holds slices and the volume."""
    slices = sorted((p for p in patient_dir.glob("*.tif") if not p.stem.endswith("_mask")),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    single = slices[len(slices) // 2]
    out = tmp_path / "out"
    done = subprocess.run([GLIOMASEG, "segment", str(patient_dir), str(single), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    slice_records = [r for r in records if r["type"] == "slice" and r["patient"]]
    patient_records = [r for r in records if r["type"] == "patient"]
    assert len(slice_records) == len(slices)
    assert [Path(r["file"]).name for r in slice_records] == [p.name for p in slices]
    assert patient_records[0]["tumor_volume_voxels"] == sum(r["tumor_area_px"] for r in slice_records)
    assert patient_records[0]["tumor_volume_voxels"] > 0
    for record in slice_records:
        mask = np.asarray(Image.open(record["mask"]))
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
        assert int((mask == 255).sum()) == record["tumor_area_px"]
        assert np.asarray(Image.open(record["overlay"])).shape == (256, 256, 3)
        assert 0.0 <= record["max_probability"] <= 1.0
    loose = [r for r in records if r["type"] == "slice" and r["patient"] is None]
    assert len(loose) == 1 and Path(loose[0]["mask"]).parent == out
