import math

import torch

from ablate.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy


def test_confusion_matrix_counts_target_rows_prediction_columns_and_skips_ignored() -> None:
    target = torch.tensor([[0, 0, 1, 2], [2, 255, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 0]])
    cm = confusion_matrix(pred, target, 3)
    expected = torch.tensor([[1, 1, 0], [1, 2, 0], [0, 1, 1]])
    assert torch.equal(cm, expected)


def test_iou_from_a_hand_built_matrix() -> None:
    cm = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    iou = iou_per_class(cm)
    assert math.isclose(iou[0], 5 / (5 + 2 + 1))
    assert math.isclose(iou[1], 3 / (3 + 1 + 2))
    assert math.isnan(iou[2])  # absent from target and prediction
    assert math.isclose(mean_iou(cm), (5 / 8 + 3 / 6) / 2)
    assert math.isclose(pixel_accuracy(cm), 8 / 11)


def test_class_predicted_but_absent_from_target_has_zero_iou() -> None:
    cm = torch.tensor([[3, 1], [0, 0]])
    assert iou_per_class(cm)[1] == 0.0


def test_empty_matrix_gives_nan_accuracy() -> None:
    assert math.isnan(pixel_accuracy(torch.zeros(2, 2, dtype=torch.long)))
