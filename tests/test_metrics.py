"""Known-answer tests for paddle_fcn.metrics (the paper's four metrics, reference score.py)."""
import json
import warnings

import numpy as np
import paddle
import pytest

from paddle_fcn.metrics import ConfusionMatrix, SegMetrics, compute_metrics, confusion_matrix

# Two images, 4 classes; class 3 appears in neither ground truth nor (counted) prediction.
# Pixels (gt, pred): (0,0)x4 (0,1) | (1,1)x3 (1,0) | (2,2)x2 (2,0) | void: (255,3) (255,1) (255,0)
LABEL_A = np.array([[0, 0, 0], [0, 0, 255], [1, 1, 255]], dtype=np.uint8)
PRED_A = np.array([[0, 0, 0], [0, 1, 3], [1, 1, 1]], dtype=np.int64)
LABEL_B = np.array([[1, 1, 2], [2, 2, 255]], dtype=np.uint8)
PRED_B = np.array([[1, 0, 2], [2, 0, 0]], dtype=np.int64)

# Rows ground truth, columns prediction. The void pixels (one predicted as class 3) are absent.
EXPECTED = np.array([
    [4, 1, 0, 0],   # t_0 = 5
    [1, 3, 0, 0],   # t_1 = 4
    [1, 0, 2, 0],   # t_2 = 3
    [0, 0, 0, 0],   # t_3 = 0
])                  # column sums: 6, 4, 2, 0


def _both_images():
    cm = ConfusionMatrix(4)
    cm.update(PRED_A, LABEL_A)
    cm.update(PRED_B, LABEL_B)
    return cm


def test_confusion_matrix_counts_and_skips_void():
    cm = _both_images()
    assert cm.matrix.dtype == np.int64
    np.testing.assert_array_equal(cm.matrix, EXPECTED)
    assert cm.matrix.sum() == 12  # 15 pixels, 3 void


def test_four_metrics_by_hand():
    m = _both_images().compute()
    # pixel acc = sum n_ii / sum t_i = (4 + 3 + 2) / 12
    assert m.pixel_acc == pytest.approx(0.75)
    # class acc n_ii / t_i = 4/5, 3/4, 2/3, 0/0 -> NaN; mean over 3 classes
    np.testing.assert_allclose(m.class_acc[:3], [0.8, 0.75, 2 / 3])
    assert np.isnan(m.class_acc[3])
    assert m.mean_acc == pytest.approx((0.8 + 0.75 + 2 / 3) / 3)  # 0.738889
    # IU n_ii / (t_i + col_i - n_ii): 4/(5+6-4) = 4/7, 3/(4+4-3) = 3/5, 2/(3+2-2) = 2/3, NaN
    np.testing.assert_allclose(m.class_IoU[:3], [4 / 7, 3 / 5, 2 / 3])
    assert np.isnan(m.class_IoU[3])
    assert m.mIoU == pytest.approx((4 / 7 + 3 / 5 + 2 / 3) / 3)  # 0.612698
    # f.w. IU = (5 * 4/7 + 4 * 3/5 + 3 * 2/3) / 12 = 7.257143 / 12
    assert m.fwIoU == pytest.approx((5 * 4 / 7 + 4 * 3 / 5 + 3 * 2 / 3) / 12)  # 0.604762
    for value in (m.pixel_acc, m.mean_acc, m.mIoU, m.fwIoU):
        assert isinstance(value, float)
    np.testing.assert_array_equal(m.confusion, EXPECTED)


def test_transposed_matrix_gives_different_accuracy():
    """Guards the row = ground truth convention: class accuracy divides by row sums."""
    m = compute_metrics(EXPECTED.T)
    np.testing.assert_allclose(m.class_acc[:3], [4 / 6, 3 / 4, 2 / 2])


def test_predicted_only_class_has_zero_iou_and_no_accuracy():
    # gt (0,0,1,1), pred (0,2,1,1): class 2 is predicted once but never in ground truth
    m = compute_metrics(confusion_matrix(np.array([0, 2, 1, 1]), np.array([0, 0, 1, 1]), 3))
    np.testing.assert_allclose(m.class_IoU, [0.5, 1.0, 0.0])   # class 2 counts as 0 in mIoU
    assert m.mIoU == pytest.approx(0.5)
    assert np.isnan(m.class_acc[2])                            # t_2 = 0: no accuracy
    assert m.mean_acc == pytest.approx((0.5 + 1.0) / 2)


def test_image_by_image_equals_concatenation():
    whole_label = np.concatenate([LABEL_A.ravel(), LABEL_B.ravel()])
    whole_pred = np.concatenate([PRED_A.ravel(), PRED_B.ravel()])
    np.testing.assert_array_equal(confusion_matrix(whole_pred, whole_label, 4), EXPECTED)

    rng = np.random.RandomState(0)
    labels = rng.randint(0, 5, size=(6, 7, 9))
    labels[labels == 4] = 255
    preds = rng.randint(0, 4, size=(6, 7, 9))
    batched = ConfusionMatrix(4).update(preds, labels)
    one_by_one = ConfusionMatrix(4)
    for p, t in zip(preds, labels):
        one_by_one.update(paddle.to_tensor(p), paddle.to_tensor(t))
    np.testing.assert_array_equal(batched.matrix, one_by_one.matrix)
    assert batched.matrix.sum() == int((labels != 255).sum())
    assert batched.compute().mIoU == pytest.approx(one_by_one.compute().mIoU)


def test_invalid_label_values_are_named():
    label = np.array([0, 1, 7, 21, 255, 7])
    with pytest.raises(ValueError, match=r"label values \[7, 21\]"):
        confusion_matrix(np.zeros(6, dtype=np.int64), label, 4)
    with pytest.raises(ValueError, match=r"label values \[-1\]"):
        confusion_matrix(np.zeros(2, dtype=np.int64), np.array([0, -1]), 4)


def test_invalid_predictions_and_inputs():
    with pytest.raises(ValueError, match=r"pred values \[4\]"):
        confusion_matrix(np.array([0, 4]), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match="integer class indices"):
        confusion_matrix(np.array([0.0, 1.0]), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3), dtype=np.int64), np.zeros((3, 2), dtype=np.int64), 4)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)


def test_merge_sums_and_reset():
    a = ConfusionMatrix(4).update(PRED_A, LABEL_A)
    b = ConfusionMatrix(4).update(PRED_B, LABEL_B)
    a.merge(b.matrix)
    np.testing.assert_array_equal(a.matrix, EXPECTED)
    a.merge(paddle.to_tensor(EXPECTED))
    np.testing.assert_array_equal(a.matrix, 2 * EXPECTED)
    with pytest.raises(ValueError, match="merge"):
        a.merge(np.zeros((3, 3), dtype=np.int64))
    a.reset()
    assert a.matrix.sum() == 0 and a.matrix.shape == (4, 4)


def test_empty_matrix_is_nan_without_warnings():
    cm = ConfusionMatrix(3).update(np.zeros((2, 2), dtype=np.int64),
                                   np.full((2, 2), 255, dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = cm.compute()
        d = m.to_dict()
        table = m.format_table()
    assert all(np.isnan(v) for v in (m.pixel_acc, m.mean_acc, m.mIoU, m.fwIoU))
    assert d["mIoU"] is None and d["class_IoU"] == {"0": None, "1": None, "2": None}
    assert "n/a" in table


def test_to_dict_is_json_safe_and_table_names_classes():
    m = _both_images().compute()
    names = ["background", "cat", "dog", "unicorn"]
    d = m.to_dict(names)
    assert set(d) == {"mIoU", "pixel_acc", "mean_acc", "fwIoU", "class_IoU", "class_acc"}
    assert d["class_IoU"]["cat"] == pytest.approx(0.6)
    assert d["class_IoU"]["unicorn"] is None and d["class_acc"]["unicorn"] is None
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    table = m.format_table(names)
    assert "unicorn" in table and "57.14" in table and "61.27" in table
    with pytest.raises(ValueError, match="3 class names for 4 classes"):
        m.to_dict(names[:3])
    assert isinstance(m, SegMetrics)
