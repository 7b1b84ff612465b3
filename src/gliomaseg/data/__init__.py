"""Data stage: dataset types behind one protocol (:mod:`.base`), label conventions, readers,
patient-level splits, preprocessing and augmentation.

Importing this package registers every dataset type; detection asks them in this order.
"""

from . import brats, image_folder, kaggle3m  # noqa: F401  (each registers its dataset type)
from .base import DATASETS, Case, CaseRef, DatasetType, detect_dataset, get_dataset, resolve_dataset

__all__ = ["DATASETS", "Case", "CaseRef", "DatasetType", "detect_dataset", "get_dataset", "resolve_dataset"]
