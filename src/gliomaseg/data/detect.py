"""Which kind of dataset a folder holds, from its layout: LGG ``kaggle_3m`` slices or BraTS cases.

``data.dataset`` in a config may name it (``lgg`` or ``brats``); ``auto`` (the default) looks at
the files: NIfTI volumes in case folders mean BraTS, anything else is read as LGG slices.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, InputError

DATASETS = ("auto", "lgg", "brats")
NIFTI_PATTERNS = ("*.nii.gz", "*.nii")


def holds_nifti(folder: Path) -> bool:
    """Whether ``folder`` directly holds NIfTI files (a BraTS case folder)."""
    return folder.is_dir() and any(any(folder.glob(pattern)) for pattern in NIFTI_PATTERNS)


def detect_dataset(path: str | Path) -> str:
    """``"brats"`` if ``path`` is a BraTS case folder, a folder of them, or the parent of a
    ``brats`` folder of them; ``"lgg"`` otherwise.

    Raises:
        InputError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_file():
        return "brats" if path.name.endswith((".nii.gz", ".nii")) else "lgg"
    candidates = [path, *path.iterdir(), *((path / "brats").iterdir() if (path / "brats").is_dir() else [])]
    return "brats" if any(holds_nifti(c) for c in candidates) else "lgg"


def resolve_dataset(path: str | Path, declared: str = "auto") -> str:
    """The dataset of ``path``: ``declared`` if not ``auto`` (checked against the layout),
    else detected.

    Raises:
        ConfigError: unknown ``declared`` value.
        InputError: the folder's layout contradicts ``declared``.
    """
    if declared not in DATASETS:
        raise ConfigError(f"data.dataset {declared!r}: choose one of {', '.join(DATASETS)}")
    found = detect_dataset(path)
    if declared != "auto" and declared != found:
        raise InputError(path, f"holds {found} data, but the config's data.dataset is {declared}")
    return found
