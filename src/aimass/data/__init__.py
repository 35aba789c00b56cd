"""Datasets: reading, validation, splits, Parquet storage and packaged samples."""

from aimass.data.importer import LABEL_TYPES, ImportOptions, PreparedDataset, prepare_dataset
from aimass.data.readers import FORMATS, Record, detect_format, read_records
from aimass.data.samples import SampleDataset, get_sample, list_samples, register_sample
from aimass.data.splits import SPLITS, assign_splits
from aimass.data.tables import SplitData, read_split, write_parquet

__all__ = [
    "FORMATS",
    "LABEL_TYPES",
    "SPLITS",
    "ImportOptions",
    "PreparedDataset",
    "Record",
    "SampleDataset",
    "SplitData",
    "assign_splits",
    "detect_format",
    "get_sample",
    "list_samples",
    "prepare_dataset",
    "read_records",
    "read_split",
    "register_sample",
    "write_parquet",
]
