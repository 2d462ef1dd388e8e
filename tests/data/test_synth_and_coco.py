import json
import logging

import numpy as np
import pytest

from edgedet.data.coco import CocoDetection, DatasetError
from edgedet.data.synth import SYNTH_CLASSES, render_sample
from edgedet.data.synth_dataset import write_synth_dataset


def test_render_is_deterministic_and_within_spec():
    a = render_sample(np.random.default_rng(3), (256, 256))
    b = render_sample(np.random.default_rng(3), (256, 256))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    sides = []
    for seed in range(40):
        s = render_sample(np.random.default_rng(seed), (256, 256))
        assert 1 <= len(s.boxes) <= 20 and s.image.shape == (256, 256, 3)
        assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2] <= 255).all() and (s.boxes[:, 3] <= 255).all()
        assert set(s.labels.tolist()) <= set(range(len(SYNTH_CLASSES)))
        sides.extend(np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]).tolist())
    assert min(sides) < 16 and max(sides) > 90  # small and large objects both occur


def test_synth_dataset_is_deterministic_and_loads(tmp_path):
    write_synth_dataset(tmp_path / "a", {"train": 6, "val": 3}, size=(128, 128), seed=5)
    write_synth_dataset(tmp_path / "b", {"train": 6, "val": 3}, size=(128, 128), seed=5)
    for split in ("train", "val"):
        a = (tmp_path / "a" / "annotations" / f"{split}.json").read_text()
        assert a == (tmp_path / "b" / "annotations" / f"{split}.json").read_text()
    assert (tmp_path / "a/images/train/000003.jpg").read_bytes() == (tmp_path / "b/images/train/000003.jpg").read_bytes()
    ds = CocoDetection.from_dir(tmp_path / "a", "train")
    assert len(ds) == 6 and ds.class_names == SYNTH_CLASSES and ds.category_ids == [1, 2, 3, 4, 5, 6]
    image, boxes, labels = ds.load(0)
    assert image.shape == (128, 128, 3) and len(boxes) == len(labels) > 0
    write_synth_dataset(tmp_path / "c", {"val": 3}, size=(128, 128), seed=6)
    assert (tmp_path / "c/annotations/val.json").read_text() != (tmp_path / "a/annotations/val.json").read_text()


def _write_coco(tmp_path, annotations, categories=None, images=None):
    (tmp_path / "images" / "train").mkdir(parents=True)
    import cv2

    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / "images" / "train" / name), np.zeros((100, 200, 3), np.uint8))
    doc = {
        "images": images or [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
                             {"id": 2, "file_name": "b.jpg", "width": 200, "height": 100},
                             {"id": 3, "file_name": "missing.jpg", "width": 200, "height": 100}],
        "annotations": annotations,
        "categories": categories or [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(doc))


def test_bad_annotations_are_dropped_with_counts(tmp_path, caplog):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20]},      # ok -> class 0 (id 3 sorts first)
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [190, 90, 30, 30]},     # partly outside -> clipped
        {"id": 3, "image_id": 1, "category_id": 7, "bbox": [10, 10, 0, 5]},        # zero size
        {"id": 4, "image_id": 1, "category_id": 7, "bbox": [10, 10, -3, 5]},       # negative size
        {"id": 5, "image_id": 1, "category_id": 7, "bbox": [300, 300, 5, 5]},      # outside
        {"id": 6, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]},         # unknown category
        {"id": 7, "image_id": 42, "category_id": 7, "bbox": [1, 1, 5, 5]},         # unknown image
        {"id": 8, "image_id": 3, "category_id": 7, "bbox": [1, 1, 5, 5]},          # image file missing
    ]
    _write_coco(tmp_path, anns)
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection.from_dir(tmp_path, "train")
    assert ds.class_names == ("dog", "cat") and ds.category_ids == [3, 7]
    assert ds.dropped == {"box of zero or negative size": 2, "box outside its image": 1, "unknown category": 1,
                          "annotation of an unknown image": 1, "image file missing": 1}
    assert "dropped 2: box of zero or negative size" in caplog.text
    boxes, labels = ds.annotations(0)
    np.testing.assert_allclose(boxes, [[10, 10, 30, 30], [190, 90, 200, 100]])
    assert labels.tolist() == [0, 1] and len(ds) == 2


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="no val split"):
        CocoDetection.from_dir(tmp_path, "val")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "val.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a JSON file"):
        CocoDetection.from_dir(tmp_path, "val")
    (tmp_path / "annotations" / "val.json").write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "a"}]}))
    with pytest.raises(DatasetError, match="no usable images"):
        CocoDetection.from_dir(tmp_path, "val")
