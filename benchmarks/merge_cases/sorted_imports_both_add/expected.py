"""Exporting reports."""

import csv
import gzip
import json
import os
import sys
from pathlib import Path


def out_dir() -> Path:
    return Path(os.environ.get("OUT", "."))


def write_csv(rows: list[list[str]]) -> Path:
    path = out_dir() / "report.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_json(rows: list[list[str]]) -> Path:
    path = out_dir() / "report.json"
    path.write_text(json.dumps(rows))
    return path


def write_gzip(data: bytes) -> Path:
    path = out_dir() / "report.gz"
    path.write_bytes(gzip.compress(data))
    return path
