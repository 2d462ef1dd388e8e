import json

import numpy as np
import pytest

from edgedet.data.coco import CocoDetection
from edgedet.data.synth_dataset import write_synth_dataset
from edgedet.eval import evaluate_predictions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synth_dataset(root, {"val": 5}, size=(128, 128), seed=2)
    return CocoDetection.from_dir(root, "val")


def _as_results(ds, jitter=0.0, drop_every=0):
    out = []
    for i in range(len(ds)):
        boxes, labels = ds.annotations(i)
        for k, (b, c) in enumerate(zip(boxes, labels)):
            if drop_every and k % drop_every == 0:
                continue
            x1, y1, x2, y2 = (float(v) for v in b)
            out.append({"image_id": ds.image_id(i), "category_id": int(c),
                        "bbox": [x1 + jitter, y1, x2 - x1, y2 - y1], "score": 0.9})
    return out


def test_perfect_predictions_score_one(dataset):
    m = evaluate_predictions(dataset, _as_results(dataset))
    assert m.AP == pytest.approx(1.0) and m.AP50 == pytest.approx(1.0)


def test_missing_and_shifted_predictions_score_lower(dataset):
    assert evaluate_predictions(dataset, _as_results(dataset, drop_every=2)).AP < 0.8
    assert evaluate_predictions(dataset, _as_results(dataset, jitter=3.0)).AP < 0.9
    assert evaluate_predictions(dataset, []).AP == 0.0


def test_wrong_class_scores_zero(dataset):
    results = [dict(r, category_id=(r["category_id"] + 1) % 6) for r in _as_results(dataset)]
    assert evaluate_predictions(dataset, results).AP < 0.05
