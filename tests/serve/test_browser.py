"""End to end in a real browser: `gliomaseg serve` in its own process, Debian's Chromium driven
by Playwright, on a real LGG patient: upload a zip of the patient folder, wait, scroll the
slices (wheel, arrow keys, slider), move the opacity slider, switch to outlines, download the
mask and compare it voxel for voxel with `gliomaseg segment`'s; a bad file gives a clear message.
Chromium comes from the ``chromium`` Debian package (``.ci/run`` installs it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import GLIOMASEG, run_cli
from conftest import BRATS_TEST_CASES
from serve_helpers import zip_folder

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def running_server(folder: Path, *options: str):
    """``gliomaseg serve`` in its own process on a free loopback port, jobs under ``folder``;
    yields its URL once it answers, stops it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([GLIOMASEG, "serve", "--port", str(port), "--results", str(folder / "jobs"), *options],
                                   stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1)  # the page: answers without a token
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"gliomaseg serve did not start: {log_path.read_text()}")
                time.sleep(0.3)
        try:
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running server with the LGG and BraTS models; its URL."""
    with running_server(tmp_path_factory.mktemp("server"), "--model", "lgg", "--model", "brats") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def upload_and_wait(browser, server: str, archive: Path):
    """A new page with ``archive`` uploaded and its result shown."""
    page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    page.goto(server)
    page.wait_for_selector("#models:has-text('brats')")
    assert not page.is_visible("#result")  # no empty viewer before an upload
    page.set_input_files("#file", str(archive))
    page.wait_for_selector("#result", state="visible", timeout=180_000)
    page.wait_for_function("document.getElementById('canvas').dataset.slice !== undefined")
    assert page.text_content("#status").startswith("done")
    return page


def download(page, target: Path) -> zipfile.ZipFile:
    with page.expect_download() as event:
        page.click("#download")
    event.value.save_as(target)
    return zipfile.ZipFile(target)


def test_page_segments_a_patient_like_the_command(server, browser, patient_dir, tmp_path):
    archive = tmp_path / f"{patient_dir.name}.zip"
    archive.write_bytes(zip_folder(patient_dir))
    slices = sorted(p for p in patient_dir.glob("*.tif") if not p.stem.endswith("_mask"))

    page = upload_and_wait(browser, server, archive)
    assert page.locator("#volumes tbody tr").count() == 1 and "tumor" in page.text_content("#legend")
    canvas = page.locator("#canvas")
    assert canvas.evaluate("c => c.width") == 256

    def shown() -> int:
        return int(canvas.get_attribute("data-slice"))

    start = shown()
    assert page.text_content("#slice-label") == f"{start + 1} / {len(slices)}"
    step = -1 if start == len(slices) - 1 else 1
    canvas.hover()
    page.mouse.wheel(0, 100 * step)
    page.wait_for_function(f"document.getElementById('canvas').dataset.slice === '{start + step}'")
    page.keyboard.press("ArrowDown" if step == 1 else "ArrowUp")
    page.wait_for_function(f"document.getElementById('canvas').dataset.slice === '{start}'")
    page.locator("#slice").fill("0")
    page.wait_for_function("document.getElementById('canvas').dataset.slice === '0'")
    page.locator("#slice").fill(str(start))
    page.wait_for_function(f"document.getElementById('canvas').dataset.slice === '{start}'")

    before = canvas.evaluate("c => c.toDataURL()")
    page.locator("#opacity").fill("90")
    page.wait_for_function("document.getElementById('canvas').dataset.alpha === '0.9'")
    assert canvas.evaluate("c => c.toDataURL()") != before  # the overlay is drawn with the new opacity
    page.select_option("#mode", "outline")
    page.screenshot(path=str(tmp_path / "viewer.png"))
    assert (tmp_path / "viewer.png").stat().st_size > 10_000

    expected = tmp_path / "command"
    result = run_cli("segment", patient_dir, "--out", expected)
    assert result.returncode == 0, result.stderr
    with download(page, tmp_path / "download.zip") as zf:
        masks = sorted(n for n in zf.namelist() if n.endswith("_mask.png"))
        assert len(masks) == len(slices)
        tumor = 0
        for name in masks:
            with zf.open(name) as handle:
                mine = np.asarray(Image.open(handle))
            theirs = np.asarray(Image.open(expected / name))
            np.testing.assert_array_equal(mine, theirs, err_msg=name)
            tumor += int((mine > 0).sum())
    assert tumor > 0
    assert page.locator("#volumes tbody td").nth(1).text_content() == str(tumor)
    assert page.is_visible("#metrics") and "dice" in page.text_content("#metrics")  # the zip held the _mask slices


def test_page_segments_a_brats_case_like_the_command(server, browser, brats_root, tmp_path):
    """A BraTS case: three regions in the legend and volume table (mL), the label map
    downloaded equals `gliomaseg segment`'s voxel for voxel."""
    import nibabel as nib

    case = brats_root / BRATS_TEST_CASES[0]
    archive = tmp_path / f"{case.name}.zip"
    archive.write_bytes(zip_folder(case))
    page = upload_and_wait(browser, server, archive)
    assert [row.split("\t")[0] for row in page.locator("#volumes tbody tr").all_inner_texts()] == ["WT", "TC", "ET"]
    for name in ("edema", "enhancing tumor", "necrotic"):
        assert name in page.text_content("#legend")
    for region in ("WT", "TC", "ET"):  # the case folder holds its _seg file: Dice per region
        assert f"{region} dice" in page.text_content("#metrics")
    start = int(page.locator("#canvas").get_attribute("data-slice"))
    page.locator("#canvas").hover()
    page.mouse.wheel(0, -100)
    page.wait_for_function(f"document.getElementById('canvas').dataset.slice === '{start - 1}'")
    page.locator("#opacity").fill("30")
    page.wait_for_function("document.getElementById('canvas').dataset.alpha === '0.3'")
    page.screenshot(path=str(tmp_path / "viewer.png"))

    expected = tmp_path / "command"
    result = run_cli("segment", case, "--out", expected)
    assert result.returncode == 0, result.stderr
    with download(page, tmp_path / "download.zip") as zf:
        zf.extract(f"{case.name}_seg.nii.gz", tmp_path / "mine")
    mine = nib.load(tmp_path / "mine" / f"{case.name}_seg.nii.gz")
    theirs = nib.load(expected / f"{case.name}_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(mine.dataobj), np.asarray(theirs.dataobj))
    np.testing.assert_array_equal(mine.affine, theirs.affine)
    assert np.asarray(mine.dataobj).any()


def test_page_explains_a_bad_file(server, browser, tmp_path):
    bad = tmp_path / "scan.tif"
    bad.write_text("this is not an image")
    page = browser.new_page()
    page.goto(server)
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:has-text('scan.tif')")
    assert "415" in page.text_content("#error") and "tiff" in page.text_content("#error")


def test_page_sends_the_token_from_its_address(browser, tmp_path):
    """With a token, the page works when opened as ``/#token=...`` and says why it cannot otherwise."""
    with running_server(tmp_path, "--model", "lgg", "--token", "page-token") as url:
        page = browser.new_page()
        page.goto(url + "/#token=page-token")
        page.wait_for_selector("#models:has-text('lgg')")
        assert page.text_content("#error") == ""
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#error:has-text('token')")
