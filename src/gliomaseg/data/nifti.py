"""Dataset type ``nifti``: MRI volumes as NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``,
``.nhdr``) or MetaImage (``.mha``, ``.mhd``) files with any names, stored in any orientation.

Layouts given to ``segment``::

    flair.nii.gz                  a loose volume file: a study of one sequence
    study/*.nii.gz                a folder of volume files: one study (id = the folder's name)
    studies/<study>/*.nii.gz      a folder of such folders: one study each

Each file's sequence (FLAIR, T1, T1ce, T2) comes from its name (:mod:`.sequences`; a study's
only file, if its name says nothing, is taken as FLAIR), or from ``--sequence flair=PATH``.
A model gets the sequences of its training layout (:func:`~.volumes.model_layout`): the LGG
model FLAIR, and T1 and T1ce as its pre- and post-contrast channels where present (FLAIR
copies where not, as in its training data); the BraTS model all four. Volumes are brought to
the model's orientation and the sequences onto FLAIR's grid (:mod:`.volumes`).

Outputs under ``--out``: ``<study>_seg.nii.gz``, the label map on the FLAIR file's grid and
affine (uint8; the model's labels: LGG 1 = FLAIR abnormality, BraTS 1, 2, 4), and with
``--save-probabilities`` ``<study>_probabilities.nii.gz``; ``results.jsonl`` gets the volume
of each region in mL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import Case, CaseRef, WriteOptions, register, visible
from .sequences import REFERENCE, Candidate, choose, from_name
from .volumes import VOLUME_SUFFIXES, StudyType, assemble, is_volume_file, model_layout, read_volume, volume_stem, write_volume_outputs


def volume_files(folder: Path) -> list[Path]:
    """The visible volume files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if visible(p) and p.is_file() and is_volume_file(p))


def candidates(ref: CaseRef, overrides: dict[str, str]) -> list[Candidate]:
    """The study's files as sequence candidates, plus files named by overrides from elsewhere."""
    found = [Candidate(from_name(volume_stem(p)), p.name, frozenset({str(p), p.name, volume_stem(p), str(p.resolve())}), p)
             for p in ref.images]
    if len(found) == 1 and found[0].key is None:  # a lone volume that says nothing: FLAIR
        found[0] = Candidate(REFERENCE, found[0].label, found[0].names, found[0].item)
    named = set().union(*(c.names for c in found)) if found else set()
    for target in overrides.values():
        if target not in named and Path(target).is_file():
            path = Path(target)
            found.append(Candidate(None, path.name, frozenset({target}), path))
    return found


@register
class Nifti(StudyType):
    """MRI volumes (NIfTI, NRRD, MetaImage) with any names and orientation, one study per folder."""

    name = "nifti"
    description = f"volume files ({', '.join(VOLUME_SUFFIXES)}) with any names: a file, a study folder or a folder of them"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return is_volume_file(path)
        if not path.is_dir():
            return False
        return bool(volume_files(path)) or any(p.is_dir() and visible(p) and volume_files(p) for p in path.iterdir())

    def find(self, root: Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
        if require_labels:
            raise InputError(root, "NIfTI studies carry no reference label maps gliomaseg reads; evaluate BraTS folders instead")
        if root.is_file():
            return [CaseRef(volume_stem(root), (root,))]
        if not root.is_dir():
            raise InputError(root, "no such file or folder")
        if volume_files(root):
            return [CaseRef(root.name, tuple(volume_files(root)))]
        folders = sorted(p for p in root.iterdir() if p.is_dir() and visible(p) and volume_files(p))
        if not folders:
            raise InputError(root, f"no volume files ({', '.join(VOLUME_SUFFIXES)}) found")
        return [CaseRef(folder.name, tuple(volume_files(folder))) for folder in folders]

    def inputs(self, path: Path, problems: list[InputError], sequences: dict[str, str] | None = None) -> list[CaseRef]:
        refs = self.find(path, require_labels=False, problems=problems)
        return [CaseRef(r.id, r.images, None, r.output, {"sequences": dict(sequences or {})}) for r in refs]

    def load(self, ref: CaseRef, channels: int | None = None) -> Case:
        """Read the sequences the model needs (see the module docstring).

        Raises:
            InputError: a sequence missing or ambiguous, an unreadable file, or a model whose
                layout volumes cannot be brought to.
        """
        layout = model_layout(channels if channels is not None else 1)
        where = ref.images[0] if len(ref.images) == 1 else ref.images[0].parent
        chosen = choose(candidates(ref, ref.info.get("sequences", {})), layout, ref.info.get("sequences", {}), where)
        volumes = {key: read_volume(candidate.item) for key, candidate in chosen.items()}
        return assemble(ref.id, self.name, volumes, layout, ref.output)

    def write(self, case: Case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
              options: WriteOptions = WriteOptions()) -> list[dict]:
        record, _ = write_volume_outputs(case, label, probabilities, out, overwrite, options)
        record["sources"] = [str(p) for p in case.sources]
        return [record]

    def outputs(self, ref: CaseRef) -> list[Path]:
        """``<study>_seg.nii.gz`` (with ``--save-probabilities`` also ``<study>_probabilities.nii.gz``)."""
        return [ref.output / f"{ref.id}_seg.nii.gz"]
