import threading

import numpy as np
import onnx
import pytest

from edgedet.runtime import Detections, Detector


@pytest.fixture(scope="module")
def decoded(exported):
    return Detector(exported["decoded"], threads=1)


def _same(a: Detections, b: Detections, atol=1e-3):
    assert len(a) == len(b)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=atol)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert a.class_ids.tolist() == b.class_ids.tolist()


def test_detections_are_in_original_pixels_and_clipped(decoded, sample_images):
    for img in sample_images:
        det = decoded(img)
        assert isinstance(det, Detections) and len(det) > 0
        h, w = img.shape[:2]
        assert det.image_shape == (h, w)
        assert (det.boxes[:, 0::2] >= 0).all() and (det.boxes[:, 0::2] <= w).all()
        assert (det.boxes[:, 1::2] >= 0).all() and (det.boxes[:, 1::2] <= h).all()
        assert (det.scores >= 0.25).all() and np.all(np.diff(det.scores) <= 0)
        assert det.class_names == decoded.class_names and len(det.class_names) == 80


def test_raw_format_gives_the_same_detections_as_decoded(exported, decoded, sample_images):
    raw = Detector(exported["raw"], threads=1)
    for img in sample_images:
        _same(raw(img), decoded(img))


def test_nms_format_best_detection_matches_decoded(exported, decoded, sample_images):
    nms = Detector(exported["nms"], threads=1)
    for img in sample_images:
        a, b = nms(img), decoded(img)
        assert len(a) > 0
        np.testing.assert_allclose(a.boxes[0], b.boxes[0], atol=1e-3)
        assert a.scores[0] == pytest.approx(b.scores[0], abs=1e-5)


def test_list_input_batches_on_dynamic_model(exported, sample_images):
    raw = Detector(exported["raw"], threads=1, max_batch=4)
    assert raw.batch is None
    together = raw(sample_images)
    assert isinstance(together, list) and len(together) == len(sample_images)
    for img, det in zip(sample_images, together):
        _same(det, raw(img))


def test_gray_and_bgra_images_are_accepted(decoded, sample_images):
    img = sample_images[0]
    import cv2

    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert decoded(gray).image_shape == img.shape[:2]
    _same(decoded(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)), decoded(img))


def test_class_filter_and_thresholds(exported, sample_images):
    full = Detector(exported["decoded"], threads=1, conf=0.3)(sample_images[3])
    cid = int(full.class_ids[0])
    only = Detector(exported["decoded"], threads=1, conf=0.3, classes=[full.class_names[cid]])(sample_images[3])
    assert set(only.class_ids.tolist()) == {cid}
    assert len(Detector(exported["decoded"], threads=1, conf=0.3, max_det=2)(sample_images[3])) == 2
    with pytest.raises(ValueError, match="unknown class 'unicorn'"):
        Detector(exported["decoded"], classes=["unicorn"])


def test_shared_between_threads_gives_sequential_results(decoded, sample_images):
    images = sample_images * 4
    expected = [decoded(img) for img in images]
    results = [[None] * len(images) for _ in range(8)]
    errors = []

    def worker(k):
        try:
            for i in range(len(images)):
                j = (i + k) % len(images)
                results[k][j] = decoded(images[j])
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for per_thread in results:
        for got, want in zip(per_thread, expected):
            _same(got, want, atol=0)


def test_detections_conversions(decoded, sample_images):
    det = decoded(sample_images[3])
    dicts = det.to_dicts()
    assert dicts[0]["class_name"] == det.class_names[dicts[0]["class_id"]]
    coco = det.to_coco(image_id=7, category_ids=list(range(1, 81)))
    x1, y1, x2, y2 = det.boxes[0]
    assert coco[0]["image_id"] == 7 and coco[0]["category_id"] == int(det.class_ids[0]) + 1
    np.testing.assert_allclose(coco[0]["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=0.01)
    drawn = det.draw(sample_images[3])
    assert drawn.shape == sample_images[3].shape and not np.array_equal(drawn, sample_images[3])


def test_warmup_and_providers(exported):
    det = Detector(exported["decoded"], providers="cpu", warmup=True, threads=1)
    assert det.providers == ["CPUExecutionProvider"] and det.session_seconds > 0
    assert "yolox-nano" in repr(det)


def _with_props(src, dst, changes):
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del props[k]
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))
    return dst


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"edgedet.class_names": "{{{"}, "edgedet.class_names: invalid JSON"),
        ({"edgedet.input_size": '"__import__(\'os\')"'}, "edgedet.input_size: expected a list of 2 integers"),
        ({"edgedet.class_names": '["only one"]'}, "output has 85 channels but the metadata lists 1 classes"),
        ({"edgedet.strides": None}, "metadata key edgedet.strides is missing"),
        ({"edgedet.format_version": None}, "not exported by edgedet"),
    ],
    ids=["bad-json", "code-in-value", "class-count", "missing-key", "foreign"],
)
def test_hostile_or_broken_metadata_names_the_key(tmp_path, exported, changes, message):
    path = _with_props(exported["decoded"], tmp_path / "m.onnx", changes)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Detector(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        Detector(tmp_path / "nope.onnx")


def test_paths_pil_and_float_images_give_the_array_result(decoded, sample_images, tmp_path):
    import cv2
    from PIL import Image

    img = sample_images[0]
    path = tmp_path / "a.png"  # lossless: the file decodes to the same pixels
    cv2.imwrite(str(path), img)
    expected = decoded(img)
    _same(decoded(str(path)), expected)
    _same(decoded(path), expected)
    _same(decoded(Image.fromarray(img[:, :, ::-1])), expected)  # PIL holds RGB
    _same(decoded(img.astype(np.float32) / 255.0), expected)  # float in 0..1
    _same(decoded(img.astype(np.float64)), expected)  # float in 0..255
    both = decoded([path, img])
    assert len(both) == 2
    _same(both[0], expected)
    _same(both[1], expected)


def test_bad_image_inputs_say_what_is_wrong(decoded, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"broken\.jpg: not a decodable image"):
        decoded(str(broken))
    with pytest.raises(ValueError, match=r"missing\.jpg: cannot read file"):
        decoded(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="NaN"):
        decoded(np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(TypeError, match="got int"):
        decoded(3)


def test_detector_is_importable_from_the_package_root():
    import edgedet

    assert edgedet.Detector is Detector and edgedet.Detections is Detections


def test_metadata_input_size_must_match_the_graph(tmp_path, exported):
    import json

    model = onnx.load(str(exported["decoded"]))
    for prop in model.metadata_props:
        if prop.key == "edgedet.input_size":
            size = json.loads(prop.value)
            prop.value = json.dumps([size[0] + 32, size[1]])
    liar = tmp_path / "liar.onnx"
    onnx.save(model, str(liar))
    with pytest.raises(ValueError, match=r"liar\.onnx: the metadata says input \d+x\d+ but the graph takes"):
        Detector(liar)
