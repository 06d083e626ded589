"""The site taxonomy every stage speaks, and the map from a model's classes onto it (pure Python).

``class_id`` in a published Detection or Track is a :class:`SiteClass`, whatever
model runs: a user's 80-class COCO model and the shipped 4-class model both
publish car = 0, truck = 1, person = 2, bicycle = 3, other = 4. A
:class:`ClassMap` turns a model's class indices into site classes; model
classes the map leaves out are dropped, or published as ``other`` when the site
asks for that.
"""
from __future__ import annotations

from enum import Enum, IntEnum

import numpy as np

from perception_nodes.errors import ConfigError


class SiteClass(IntEnum):
    """Object classes of a site (the values are the published ``class_id``)."""

    CAR = 0
    TRUCK = 1
    PERSON = 2
    BICYCLE = 3
    OTHER = 4

    @property
    def label(self) -> str:
        return self.name.lower()


SITE_CLASS_NAMES = tuple(c.label for c in SiteClass)


class UnmappedPolicy(str, Enum):
    """What happens to a detection whose model class the class map does not name."""

    DROP = "drop"
    OTHER = "other"


def site_class(name: str) -> SiteClass:
    """``"car"`` -> SiteClass.CAR; ConfigError naming the known classes otherwise."""
    try:
        return SiteClass[str(name).strip().upper()]
    except KeyError:
        raise ConfigError(f"unknown site class {name!r}; site classes: {list(SITE_CLASS_NAMES)}") from None


class ClassMap:
    """Model class index -> site class, built from the model's class names and a name -> name mapping.

    ``mapping`` maps model class names to site class names; None maps every model
    class whose name is a site class name onto it (the shipped models' case).
    """

    def __init__(self, model_classes: list[str], mapping: dict[str, str] | None = None,
                 unmapped: UnmappedPolicy | str = UnmappedPolicy.DROP):
        self.model_classes = [str(c) for c in model_classes]
        self.unmapped = UnmappedPolicy(unmapped)
        if mapping is None:
            mapping = {name: name for name in self.model_classes if name.lower() in SITE_CLASS_NAMES}
        unknown = sorted(set(mapping) - set(self.model_classes))
        if unknown:
            raise ConfigError(f"class map names model classes {unknown} that the model does not have "
                              f"(model classes: {self.model_classes[:12]}{' ...' if len(self.model_classes) > 12 else ''})")
        self.mapping = {str(k): site_class(v) for k, v in mapping.items()}
        fill = int(SiteClass.OTHER) if self.unmapped is UnmappedPolicy.OTHER else -1
        # -1: dropped. A lookup table, so mapping a frame's detections is one indexing operation.
        self.table = np.full(len(self.model_classes), fill, dtype=np.int64)
        for index, name in enumerate(self.model_classes):
            if name in self.mapping:
                self.table[index] = int(self.mapping[name])

    @classmethod
    def from_pairs(cls, model_classes: list[str], pairs: list[str], unmapped: str = "drop") -> "ClassMap":
        """From ROS-parameter form ``["model_name=site_name", ...]``; an empty list is the default mapping."""
        mapping: dict[str, str] = {}
        for pair in pairs:
            model_name, sep, site_name = str(pair).partition("=")
            if not sep or not model_name.strip() or not site_name.strip():
                raise ConfigError(f"class map entry {pair!r} must read 'model_class=site_class'")
            mapping[model_name.strip()] = site_name.strip()
        return cls(model_classes, mapping or None, unmapped)

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """Detection rows [x1, y1, x2, y2, score, model class] -> the same rows in site classes, unmapped dropped."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        model_ids = rows[:, 5].astype(np.int64)
        inside = (model_ids >= 0) & (model_ids < len(self.table))
        site_ids = np.full(len(rows), -1, dtype=np.int64)
        site_ids[inside] = self.table[model_ids[inside]]
        keep = site_ids >= 0
        out = rows[keep].copy()
        out[:, 5] = site_ids[keep]
        return out

    def describe(self) -> str:
        mapped = ", ".join(f"{k}->{v.label}" for k, v in sorted(self.mapping.items()))
        return f"{mapped}; others {self.unmapped.value}"
