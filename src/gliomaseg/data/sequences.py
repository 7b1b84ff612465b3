"""Which MRI sequence a volume file or DICOM series is: FLAIR, T1, T1 with contrast (T1ce) or T2,
identified from its name (file name, DICOM SeriesDescription, ProtocolName, SequenceName) and,
for DICOM, from the acquisition (contrast agent, inversion, echo and repetition times); and
the choice, per study, of the sequences a model needs, with explicit overrides
(``--sequence flair=PATH_OR_SERIES_UID``). Shared by the NIfTI and DICOM dataset types.

Name rules (case-insensitive, on the words of the name split at anything not a letter, digit
or ``+``): FLAIR: ``flair``, ``t2f``, ``tirm`` or ``darkfluid`` (Siemens' dark-fluid T2);
T1ce: a T1 word with ``ce``, ``c``, ``gd``, ``gad``, ``post``, ``contrast``, ``+c``, ``+gd`` or a
``t1c``, ``t1ce``, ``t1gd``, ``t1post`` word (BraTS 2023 ``t1c``); T1: ``t1``, ``t1n``, ``t1w``,
``mprage``, ``spgr``, ``tfl``; T2: ``t2``, ``t2w``. Acquisition rules where the name says nothing
(typical clinical values): an inversion time over 1500 ms with an echo time over 70 ms is
FLAIR; echo time over 70 ms is T2; echo time under 30 ms is T1, T1ce when the series records a
contrast agent (ContrastBolusAgent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError

SEQUENCES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1 with contrast (T1ce)", "t2": "T2"}
# Other names users may give to --sequence (BraTS 2023's file keys, common words).
ALIASES = {"t2f": "flair", "t1n": "t1", "t1c": "t1ce", "t1gd": "t1ce", "t2w": "t2", "t1w": "t1"}
REFERENCE = "flair"  # every model needs it; outputs lie on its grid
# The sequence behind each channel name of the training layouts (kaggle3m, brats).
CHANNEL_SEQUENCE = {"pre-contrast": "t1", "FLAIR": "flair", "post-contrast": "t1ce", "T1": "t1", "T1ce": "t1ce", "T2": "t2"}
# Channels a missing sequence may leave as a FLAIR copy: the LGG slices (kaggle_3m) hold FLAIR
# copies where the pre- or post-contrast sequence was missing (its README), and the bundled LGG
# model was trained with such copies (augment.flair_copy), so FLAIR alone can feed it.
FLAIR_COPY_CHANNELS = {"pre-contrast", "post-contrast"}

_CONTRAST = {"ce", "c", "gd", "gad", "post", "contrast", "+c", "+gd", "gado", "postcontrast"}
_FLAIR = {"flair", "t2f", "tirm", "darkfluid", "dark_fluid"}
_T1CE = {"t1c", "t1ce", "t1gd", "t1post", "t1+c", "t1+gd"}
_T1 = {"t1", "t1n", "t1w", "mprage", "spgr", "tfl", "t1pre"}
_T2 = {"t2", "t2w"}


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (split at anything not a letter, digit or ``+``)."""
    return [w for w in re.split(r"[^a-z0-9+]+", text.lower()) if w]


def from_name(text: str) -> str | None:
    """The sequence key a name points to (module rules), or ``None``."""
    found = set(words(text))
    joined = "".join(words(text))
    if found & _FLAIR or "darkfluid" in joined:
        return "flair"
    if found & _T1CE or (found & _T1 and found & _CONTRAST):
        return "t1ce"
    if found & _T1:
        return "t1"
    if found & _T2:
        return "t2"
    return None


def from_acquisition(inversion_ms: float | None, echo_ms: float | None, contrast_agent: bool) -> str | None:
    """The sequence key the acquisition times point to (module rules), or ``None``."""
    if echo_ms is None:
        return None
    if inversion_ms is not None and inversion_ms > 1500 and echo_ms > 70:
        return "flair"
    if echo_ms > 70:
        return "t2"
    if echo_ms < 30:
        return "t1ce" if contrast_agent else "t1"
    return None


def parse_overrides(values: list[str]) -> dict[str, str]:
    """``["flair=PATH_OR_UID", ...]`` -> ``{"flair": "PATH_OR_UID", ...}`` (aliases resolved).

    Raises:
        ConfigError: not ``NAME=VALUE``, an unknown sequence name, or one named twice.
    """
    chosen: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        key = ALIASES.get(name.strip().lower(), name.strip().lower())
        if not sep or not target.strip():
            raise ConfigError(f"--sequence {value!r}: expected NAME=PATH_OR_SERIES_UID, e.g. flair=scans/flair.nii.gz")
        if key not in SEQUENCES:
            raise ConfigError(f"--sequence {value!r}: unknown sequence {name!r}; known: {', '.join(SEQUENCES)}")
        if key in chosen:
            raise ConfigError(f"--sequence names {key} twice")
        chosen[key] = target.strip()
    return chosen


@dataclass(frozen=True)
class Candidate:
    """A volume file or series that may be one of a study's sequences.

    Attributes:
        key: the sequence it was identified as, or ``None``.
        label: how messages name it (file name, or series UID and description).
        names: the strings an override may use for it (path, file name, SeriesInstanceUID).
        item: what the dataset type reads it from (a path, a series record).
    """

    key: str | None
    label: str
    names: frozenset[str]
    item: object = field(compare=False)


def channel_sequences(layout) -> list[str]:
    """The sequence key of each channel of a training layout (a :class:`~.base.DatasetType`)."""
    return [CHANNEL_SEQUENCE[name] for name in layout.channels]


def needed(layout) -> tuple[list[str], list[str]]:
    """(required, optional) sequence keys for a training layout: optional ones become FLAIR copies."""
    required, optional = [], []
    for name in layout.channels:
        (optional if name in FLAIR_COPY_CHANNELS else required).append(CHANNEL_SEQUENCE[name])
    return required, optional


def choose(candidates: list[Candidate], layout, overrides: dict[str, str], where: Path) -> dict[str, Candidate]:
    """The candidate for each sequence ``layout`` uses: the one an override names, else the
    only one identified as it.

    Returns:
        sequence key -> candidate, for every required key and the optional keys found.

    Raises:
        InputError (naming ``where``): an override that names no candidate, a required sequence
            missing, or several candidates for one sequence without an override.
    """
    required, optional = needed(layout)
    chosen: dict[str, Candidate] = {}
    for key, target in overrides.items():
        matches = [c for c in candidates if target in c.names]
        if not matches:
            raise InputError(where, f"--sequence {key}={target}: no volume file or series of this study is {target}")
        chosen[key] = matches[0]
    for key in required + optional:
        if key in chosen:
            continue
        found = [c for c in candidates if c.key == key]
        if len(found) > 1:
            raise InputError(where, f"ambiguous {SEQUENCES[key]}: {' and '.join(c.label for c in found)}; "
                             f"choose one with --sequence {key}=PATH_OR_SERIES_UID")
        if found:
            chosen[key] = found[0]
        elif key in required:
            seen = ", ".join(f"{c.label} ({SEQUENCES[c.key] if c.key else 'not identified'})" for c in candidates) or "none"
            raise InputError(where, f"the model needs {SEQUENCES[key]}, which no volume or series is identified as "
                             f"(seen: {seen}); name it with --sequence {key}=PATH_OR_SERIES_UID")
    return chosen
