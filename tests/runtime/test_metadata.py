import json

import pytest

from edgedet.runtime.metadata import MetadataError, ModelMetadata, NmsSettings, from_props, to_props


def _meta(**changes):
    base = ModelMetadata(model_name="yolox-nano", input_size=(416, 416), class_names=("a", "b"))
    return base.with_changes(**changes)


def test_round_trip():
    meta = _meta(output_format="nms", nms=NmsSettings(100, 0.3, 0.5), batch=None, calibration={"method": "minmax"})
    props = to_props(meta)
    assert all(k.startswith("edgedet.") for k in props)
    assert json.loads(props["edgedet.class_names"]) == ["a", "b"]
    assert from_props(props) == meta


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("input_size", "[416]", "edgedet.input_size: expected a list of 2 integers"),
        ("input_size", '"416"', "edgedet.input_size: expected a list of 2 integers"),
        ("class_names", "{not json", "edgedet.class_names: invalid JSON"),
        ("class_names", "[1, 2]", "edgedet.class_names: expected a string"),
        ("output_format", '"boxes"', "edgedet.output_format: expected one of decoded, raw, nms"),
        ("pad_value", "300", "edgedet.pad_value: expected an integer in [0, 255]"),
        ("nms", '{"max_det": 1}', "edgedet.nms: expected null or an object"),
        ("batch", "true", "edgedet.batch: expected an integer"),
        ("class_names", json.dumps(["x" * 300]), "edgedet.class_names: expected a string of at most 256"),
        ("model_name", json.dumps("m" * (2 << 20)), "edgedet.model_name: value is not a string of at most"),
    ],
    ids=["short-size", "string-size", "bad-json", "int-names", "bad-format", "pad", "nms-keys", "bool-batch",
         "long-name", "huge-value"],
)
def test_malformed_values_name_the_key(key, value, message):
    props = to_props(_meta())
    props[f"edgedet.{key}"] = value
    with pytest.raises(MetadataError) as e:
        from_props(props)
    assert message in str(e.value)


def test_missing_key_is_named():
    props = to_props(_meta())
    del props["edgedet.strides"]
    with pytest.raises(MetadataError, match="metadata key edgedet.strides is missing"):
        from_props(props)


def test_foreign_model_says_what_to_do():
    with pytest.raises(MetadataError, match="not exported by edgedet"):
        from_props({"author": "someone"})


def test_nms_settings_required_for_nms_format():
    with pytest.raises(MetadataError, match="edgedet.nms: required"):
        to_props(_meta(output_format="nms"))
