"""Pseudo-attributes: deterministic documented rules, the >99% drop rule, the user CSV."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veil.data.attributes import (
    ATTRIBUTE_NAMES,
    COLOURS,
    AttributeTable,
    drop_unbalanced,
    load_user_attributes,
    pseudo_attributes,
)
from veil.data.crops import CropSet
from veil.errors import VeilError


def _frame(upper_rgb, lower_rgb) -> torch.Tensor:
    """A 100x60 frame whose box (0, 0, 60, 100) wears ``upper_rgb`` over ``lower_rgb``."""
    img = torch.zeros(3, 100, 60, dtype=torch.uint8)
    img[:, :52] = torch.tensor(upper_rgb, dtype=torch.uint8)[:, None, None]
    img[:, 52:] = torch.tensor(lower_rgb, dtype=torch.uint8)[:, None, None]
    return img


def _crops(n: int) -> CropSet:
    return CropSet(np.arange(n), np.tile([[0, 0, 60, 100]], (n, 1)).astype(np.float32), np.full(n, -1),
                   np.full(n, "", "<U5"), np.arange(n, dtype=float))


@pytest.mark.parametrize(("upper", "lower", "expect"), [
    ((200, 30, 30), (20, 20, 20), {"upper_red", "lower_dark", "upper_lighter"}),
    ((240, 240, 240), (30, 60, 200), {"upper_light", "lower_blue", "upper_lighter"}),
    ((20, 20, 20), (230, 200, 40), {"upper_dark", "lower_yellow", "lower_lighter"}),
    ((150, 150, 150), (40, 160, 40), {"upper_grey", "lower_green"}),
])
def test_rules_on_synthetic_clothes(upper, lower, expect):
    table = pseudo_attributes(_frame(upper, lower)[None], _crops(1))
    on = {n for n, v in zip(table.names, table.values[0]) if v}
    assert on == expect
    # exactly one colour class per region
    assert table.values[0, : len(COLOURS)].sum() == 1 == table.values[0, len(COLOURS) : 2 * len(COLOURS)].sum()


def test_drop_unbalanced_removes_near_constant_attributes():
    values = np.zeros((200, 3), np.uint8)
    values[:100, 0] = 1  # balanced
    values[:1, 1] = 1  # 99.5% zeros: dropped
    values[:3, 2] = 1  # 98.5% zeros: kept
    kept = drop_unbalanced(AttributeTable(["a", "b", "c"], values))
    assert kept.names == ["a", "c"]


def test_user_csv_replaces_pseudo_attributes(tmp_path):
    crops = CropSet(np.array([0, 0, 1]), np.array([[0, 0, 50, 100], [100, 0, 150, 100], [0, 0, 50, 100]],
                                                   np.float32), np.full(3, -1), np.full(3, "", "<U5"), np.zeros(3))
    csv = tmp_path / "labels.csv"
    csv.write_text("frame,x1,y1,x2,y2,hat,bag\n"
                   "a.jpg,102,2,150,98,1,0\n"   # matches crop 1 (IoU > 0.5)
                   "b.jpg,0,0,50,100,0,1\n"     # matches crop 2
                   "a.jpg,300,300,340,380,1,1\n")  # no box there: ignored
    table, matched = load_user_attributes(csv, crops, ["a.jpg", "b.jpg"])
    assert table.names == ["hat", "bag"]
    assert matched.tolist() == [False, True, True]
    assert table.values.tolist() == [[1, 0], [0, 1]]
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,x1,y1,x2,hat\na.jpg,0,0,1,1\n")
    with pytest.raises(VeilError, match="missing column"):
        load_user_attributes(bad, crops, ["a.jpg", "b.jpg"])


def test_attribute_names_are_documented():
    assert len(ATTRIBUTE_NAMES) == 2 * len(COLOURS) + 2
