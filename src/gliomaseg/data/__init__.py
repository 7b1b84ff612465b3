"""Data stage: readers, patient-level splits, preprocessing and augmentation."""

from .kaggle3m import Patient, find_patients, load_patient, patient_from_files
from .io import read_image, read_mask

__all__ = ["Patient", "find_patients", "load_patient", "patient_from_files", "read_image", "read_mask"]
