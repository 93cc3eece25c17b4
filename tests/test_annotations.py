"""AIR-SLT annotation loading and validation."""

from __future__ import annotations

import json

import pytest

from selo.errors import AnnotationError, InputNotFoundError
from selo.selo_tasks.annotations import Case, load_annotations, packaged_annotations

GOOD = {
    "caption": "a green pond",
    "jpg_name": "0.jpg",
    "points": [[[0, 0], [10, 0], [10, 10], [0, 10]]],
}


def test_packaged_airslt_has_59_cases_over_22_scenes():
    cases = load_annotations()
    assert len(cases) == 59
    assert len({c.image for c in cases}) == 22
    assert cases[0] == Case(
        index=0,
        image="0.jpg",
        query="there is a green pond next to the gray road.",  # trailing newline stripped
        polygons=cases[0].polygons,
    )
    assert cases[0].polygons[0][0] == (1882.26806640625, 203.692886352539)
    assert all(c.index == i for i, c in enumerate(cases))
    assert packaged_annotations().with_name("LICENSE").is_file()


def write(tmp_path, data):
    p = tmp_path / "anno.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def with_(**changes):
    entry = dict(GOOD)
    entry.update(changes)
    return entry


def without(key):
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),  # malformed JSON names line and column
        ({"caption": "x"}, "expected a JSON list"),  # not a list
        ([], "contains no cases"),
        (["text"], "case 0: expected an object"),
        ([GOOD, without("points")], "case 1: missing field(s) 'points'"),
        ([without("caption")], "missing field(s) 'caption'"),
        ([with_(caption="   ")], "field 'caption'"),  # whitespace-only query
        ([with_(caption=3)], "field 'caption'"),
        ([with_(jpg_name=5)], "field 'jpg_name'"),
        ([with_(jpg_name="/etc/passwd")], "not a plain file name"),  # absolute path
        ([with_(jpg_name="../0.jpg")], "not a plain file name"),  # traversal
        ([with_(jpg_name="..")], "not a plain file name"),
        ([with_(jpg_name="sub/0.jpg")], "not a plain file name"),  # separator
        ([with_(jpg_name="sub\\0.jpg")], "not a plain file name"),
        ([with_(jpg_name="C:0.jpg")], "not a plain file name"),  # drive-relative
        ([with_(jpg_name="")], "not a plain file name"),
        ([with_(points=[])], "field 'points': must be a non-empty list"),
        (
            [with_(points=[[[0, 0], [1, "a"], [3, 3]]])],
            "polygon 0, point 1: y is not a finite number",
        ),
        ([with_(points=[[[0, 0], [True, 1], [3, 3]]])], "point 1: x is not a finite number"),
        ([with_(points=[[[0, 0], [1], [3, 3]]])], "point 1: must be an [x, y] pair"),
        ([with_(points=[[0, 0, 1]])], "looks like one polygon"),  # forgot the list of polygons
        (
            [with_(points=[[[0, 0], [1, 1], [2, 0]], 7])],
            "polygon 1: must be a list of [x, y] points",
        ),
        ("[" + json.dumps(with_(points=[[[0, 0], [1, 1], [2, 5]]]))[:-1] + ', "x": NaN}]', None),
        (
            [with_(points=[[[0, 0], [10, 10], [0, 0], [10, 10]]])],
            "polygon 0: fewer than 3 distinct points",
        ),
        ([with_(points=[[[0, 0], [5, 5], [10, 10]]])], "polygon 0: zero area"),
        (
            [GOOD, with_(points=[GOOD["points"][0], [[0, 0], [0.2, 0], [0, 0.2]]])],
            "case 1, field 'points', polygon 1",
        ),
    ],
)
def test_bad_annotations_name_case_and_field(tmp_path, data, message):
    path = write(tmp_path, data)
    if message is None:  # extra keys (even NaN ones) are ignored
        assert len(load_annotations(path)) == 1
        return
    with pytest.raises(AnnotationError) as e:
        load_annotations(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_nan_point_is_refused(tmp_path):
    path = write(
        tmp_path, '[{"caption": "x", "jpg_name": "a.jpg", "points": [[[0, 0], [NaN, 1], [3, 3]]]}]'
    )
    with pytest.raises(AnnotationError, match="point 1: x is not a finite number"):
        load_annotations(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputNotFoundError, match="not found"):
        load_annotations(tmp_path / "nope.json")
    with pytest.raises(AnnotationError, match="is a folder"):
        load_annotations(tmp_path)


def test_integer_and_float_points_are_equivalent(tmp_path):
    a = load_annotations(write(tmp_path, [with_(points=[[[0, 0], [10, 0], [10, 10]]])]))
    b = load_annotations(write(tmp_path, [with_(points=[[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]])]))
    assert a == b
