"""gliomaseg: train, evaluate and apply deep segmentation networks for gliomas in brain MRI."""

__version__ = "0.2.0"
