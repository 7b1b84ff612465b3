"""Data stage: dataset types behind one protocol (:mod:`.base`), label conventions, readers,
patient-level splits, preprocessing and augmentation.

Importing this package registers every dataset type; detection asks them in this order.
"""

# Each import registers its dataset type, in this order. Specific layouts first: BraTS-named
# NIfTI folders before any volume folder; DICOM (detected by content, which costs reads) after
# the slice layouts; loose volume files last.
from . import brats, image_folder, kaggle3m  # noqa: F401  isort: skip
from . import dicom, nifti  # noqa: F401  isort: skip
from .base import DATASETS, Case, CaseRef, DatasetType, detect_dataset, get_dataset, resolve_dataset

__all__ = ["DATASETS", "Case", "CaseRef", "DatasetType", "detect_dataset", "get_dataset", "resolve_dataset"]
