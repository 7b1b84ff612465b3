"""Uploads into a job folder, safely: file names checked against a whitelist (a client's
name never chooses a folder), content identified by its leading bytes (not its extension),
zip archives extracted with zip-slip, symlink and zip-bomb checks and a byte count that does
not trust the archive's own sizes.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

# A file or folder name a client may give: letters, digits, dot, dash, underscore; no leading dot.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# Leading bytes of each accepted kind (TIFF little/big endian, PNG, JPEG, BMP, gzip, zip).
MAGIC = {
    "tiff": (b"II*\x00", b"MM\x00*"),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "bmp": (b"BM",),
    "gzip": (b"\x1f\x8b",),
    "zip": (b"PK\x03\x04",),
}
# The kinds each file extension must hold (a .nii.gz is gzip; a plain .nii is a NIfTI-1 header).
EXTENSION_KINDS = {
    ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp",
    ".nii.gz": "gzip", ".nii": "nifti", ".zip": "zip", ".dcm": "dicom",
}
CHUNK = 1 << 20


class UploadError(Exception):
    """An upload that cannot be used; ``status`` is the HTTP status to answer (400, 413, 415)."""

    def __init__(self, name: str, problem: str, status: int = 400):
        self.name, self.problem, self.status = name, problem, status
        super().__init__(f"{name}: {problem}")


def sniff(head: bytes) -> str | None:
    """The kind of a file from its first bytes (at least 348 for NIfTI): a key of
    :data:`MAGIC`, ``dicom`` (a DICOM Part 10 file: ``DICM`` after its 128-byte preamble),
    ``nifti`` (NIfTI-1 ``sizeof_hdr`` 348 and magic ``n+1``/``ni1`` at byte 344, NIfTI-1.1
    standard) or ``None``."""
    for kind, signatures in MAGIC.items():
        if head.startswith(signatures):
            return kind
    if head[128:132] == b"DICM":
        return "dicom"
    if len(head) >= 348 and head[344:347] in (b"n+1", b"ni1") and int.from_bytes(head[:4], "little") in (348, 348 << 24):
        return "nifti"
    return None


def extension(name: str) -> str:
    """The extension that decides a name's expected kind (``.nii.gz`` as one), lower case."""
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else PurePosixPath(lower).suffix


def check_name(name: str) -> str:
    """``name`` if it is a plain, safe file name (its type is checked from its content, see
    :func:`check_kind`).

    Raises:
        UploadError: a path, a hidden or odd name.
    """
    if not SAFE_NAME.match(name) or ".." in name:
        raise UploadError(name or "(no name)", "file names may only hold letters, digits, '.', '-' and '_'")
    return name


def check_kind(name: str, head: bytes) -> str:
    """The sniffed kind of a file called ``name`` whose first bytes are ``head``.

    Raises:
        UploadError (415): the content is not what the extension says.
    """
    kind, expected = sniff(head), EXTENSION_KINDS.get(extension(name))
    if expected is None:  # scanners and PACS name DICOM files anything (IM0001, UIDs): known by content
        if kind == "dicom":
            return kind
        raise UploadError(name, f"unsupported file type; expected one of {sorted(EXTENSION_KINDS)}, or DICOM files "
                          "of any name", 415)
    if kind != expected:
        raise UploadError(name, f"content is {kind or 'not a known image, NIfTI or zip'}, not the {expected} its extension says", 415)
    return kind


def save_upload(source: BinaryIO, name: str, folder: Path, budget: list[int]) -> Path:
    """Copy one uploaded file into ``folder`` under its checked name; a zip is checked and
    extracted there instead (and removed).

    Args:
        budget: ``[bytes left]`` of the job's size limit, decremented as files are written.

    Raises:
        UploadError: unsafe name, content not matching the name, over the size limit, bad zip.
    """
    name = check_name(name)
    head = source.read(512)
    kind = check_kind(name, head)
    target = folder / name
    if target.exists():
        raise UploadError(name, "uploaded twice")
    with open(target, "wb") as out:
        _copy_limited(head, source, out, budget, name)
    if kind == "zip":
        try:
            extract_zip(target, folder, budget)
        finally:
            target.unlink()
    return target


def _copy_limited(head: bytes, source: BinaryIO, out: BinaryIO, budget: list[int], name: str) -> None:
    chunk = head
    while chunk:
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise UploadError(name, "the upload is larger than the server's limit", 413)
        out.write(chunk)
        chunk = source.read(CHUNK)


def extract_zip(archive: Path, folder: Path, budget: list[int], max_entries: int = 10_000) -> None:
    """Extract ``archive`` into ``folder``: every path component must be a safe name (no
    absolute path, no ``..``: zip slip), no links, at most ``max_entries`` entries, and the
    sizes the archive declares, then the bytes actually inflated (a forged header cannot
    hide a zip bomb), count against ``budget``. Files inside are checked by sniffing like direct uploads; hidden
    files and folders (``__MACOSX``, ``.DS_Store``) are skipped.

    Raises:
        UploadError: a corrupt zip or an entry breaking these rules (naming the entry).
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            if len(entries) > max_entries:
                raise UploadError(archive.name, f"holds {len(entries)} entries; the limit is {max_entries}", 413)
            if sum(e.file_size for e in entries) > budget[0]:
                raise UploadError(archive.name, "inflates to more than the server's upload limit (a zip bomb?)", 413)
            for entry in entries:
                _extract_entry(zf, entry, folder, budget)
    except zipfile.BadZipFile as exc:
        raise UploadError(archive.name, f"not a readable zip ({exc})") from None


def _extract_entry(zf: zipfile.ZipFile, entry: zipfile.ZipInfo, folder: Path, budget: list[int]) -> None:
    raw = entry.filename.replace("\\", "/")
    parts = PurePosixPath(raw).parts
    if raw.startswith("/") or any(p == ".." for p in parts):
        raise UploadError(raw, "zip entry points outside its folder (zip slip)")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return
    if stat.S_ISLNK(entry.external_attr >> 16):
        raise UploadError(raw, "zip entry is a symbolic link")
    for part in parts:
        if not SAFE_NAME.match(part):
            raise UploadError(raw, "zip entry names may only hold letters, digits, '.', '-' and '_'")
    target = folder.joinpath(*parts)
    if entry.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    check_name(parts[-1])
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise UploadError(raw, "zip holds this file twice")
    try:
        with zf.open(entry) as source, open(target, "wb") as out:
            head = source.read(512)
            if check_kind(parts[-1], head) == "zip":
                raise UploadError(raw, "zip inside a zip")
            _copy_limited(head, source, out, budget, raw)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise UploadError(raw, f"corrupt zip entry ({exc})") from None


def group_volumes(folder: Path) -> None:
    """Loose NIfTI files uploaded together are one case's sequences: move them into a case
    folder named by their common name prefix (``Brats18_X_1_flair.nii.gz``, ... ->
    ``Brats18_X_1/``), the layout the BraTS reader expects. Nothing happens when they share
    no prefix or a folder of that name exists."""
    volumes = sorted(p for p in folder.iterdir() if p.is_file() and extension(p.name) in (".nii", ".nii.gz"))
    if len(volumes) < 2:
        return
    prefix = os.path.commonprefix([p.name for p in volumes]).rstrip("_-.")
    if not SAFE_NAME.match(prefix) or (folder / prefix).exists():
        return
    (folder / prefix).mkdir()
    for path in volumes:
        path.rename(folder / prefix / path.name)


def remove_tree(folder: Path) -> None:
    """Delete a job folder (the server's own path; never a client's)."""
    shutil.rmtree(folder, ignore_errors=True)
