import math

import pytest
import torch

from veil.evaluation.ap import average_precision, voc_ap

GT = [torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])]


def test_perfect_detections_score_one():
    assert average_precision([(GT[0].clone(), torch.tensor([0.9, 0.8]))], GT) == pytest.approx(1.0)


def test_hand_computed_all_point_interpolation():
    # ranked: TP (0.9), FP (0.8), TP (0.7): recall 0.5, 0.5, 1.0; precision 1, 0.5, 2/3
    boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])
    ap = average_precision([(boxes, torch.tensor([0.9, 0.8, 0.7]))], GT)
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_duplicate_detection_counts_as_false_positive():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    ap = average_precision([(boxes, torch.tensor([0.9, 0.8]))], GT)
    assert ap == pytest.approx(0.5)  # recall stops at 0.5, precision 1 there


def test_iou_threshold_is_half():
    shifted = torch.tensor([[3.0, 0, 13, 10]])  # IoU 7/13 = 0.54 >= 0.5
    further = torch.tensor([[4.0, 0, 14, 10]])  # IoU 6/14 = 0.43 < 0.5
    assert average_precision([(shifted, torch.tensor([0.9]))], [GT[0][:1]]) == pytest.approx(1.0)
    assert average_precision([(further, torch.tensor([0.9]))], [GT[0][:1]]) == 0.0


def test_no_ground_truth_is_nan_and_voc_envelope():
    assert math.isnan(average_precision([(torch.zeros(0, 4), torch.zeros(0))], [torch.zeros(0, 4)]))
    import numpy as np

    assert voc_ap(np.array([0.5, 1.0]), np.array([0.5, 1.0])) == pytest.approx(1.0)  # envelope lifts 0.5
