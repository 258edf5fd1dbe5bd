"""What the dashboard shows about the dataset folder before a run starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.dataset import load_dataset
from ..core.spec import CodeSpec


@dataclass(frozen=True)
class DatasetSummary:
    path: Path
    train: int
    val: int
    test: int
    spec: CodeSpec

    @property
    def total(self) -> int:
        return self.train + self.val + self.test


def read_dataset_summary(path: Path) -> DatasetSummary:
    """Memory-maps the arrays, so this is quick even for a large set; raises :class:`DatasetError`."""
    data = load_dataset(path, mmap=True)
    return DatasetSummary(
        path=Path(path),
        train=data.count("train"),
        val=data.count("val"),
        test=data.count("test"),
        spec=data.spec,
    )
