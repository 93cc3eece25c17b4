"""What `selo serve` holds (selo_tasks/serve/state.py): the bounded map LRU, sentence checks,
and run folders."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from scenes import square

from selo.errors import InputNotFoundError, ParameterError, RunFolderError, RunMismatchError
from selo.selo_tasks.run_folder import is_run_folder
from selo.selo_tasks.serve.state import MapEntry, MapLRU, ServeState


def entry(nbytes: int, sentence: str = "s") -> MapEntry:
    return MapEntry(sentence, np.zeros(nbytes, np.uint8), 0.0)


def test_lru_drops_the_least_recently_used_beyond_its_bytes():
    lru = MapLRU(300)
    for name in "abc":
        lru.put(("s1", name), entry(100, name))
    assert len(lru) == 3 and lru.nbytes == 300
    assert lru.get(("s1", "a")).sentence == "a"  # a is now the most recent
    lru.put(("s1", "d"), entry(100))
    assert ("s1", "b") not in lru and ("s1", "a") in lru and lru.nbytes == 300
    lru.put(("s1", "e"), entry(250))  # drops c, a and d to fit
    assert [k for k in ("a", "c", "d", "e") if ("s1", k) in lru] == ["e"]
    lru.put(("s1", "f"), entry(400))  # larger than the bound: kept alone
    assert len(lru) == 1 and ("s1", "f") in lru
    lru.put(("s1", "f"), entry(10))  # a key put again replaces its bytes
    assert lru.nbytes == 10


def test_lru_refuses_no_size():
    with pytest.raises(ParameterError, match="positive size"):
        MapLRU(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),  # nothing
        ("  \t\n", "empty"),  # white space only
        ("x" * 1001, "at most 1000"),  # the hard limit
        (None, "JSON string"),  # not text
        (["white"], "JSON string"),
    ],
)
def test_bad_sentences(text, message):
    with pytest.raises(ParameterError, match=message):
        ServeState(mode="run").check_sentence(text)


def test_sentences_are_stripped():
    assert ServeState(mode="run").check_sentence("  white roofs \n") == "white roofs"


def test_a_run_folder_serves_its_cases(run_folder):
    assert is_run_folder(run_folder / "run") and not is_run_folder(run_folder / "images")
    state = ServeState.for_run(run_folder / "run", anno=run_folder / "anno.json")
    assert [s.name for s in state.scenes.values()] == ["a.png", "b.png"]
    cases = state.history("s1")
    assert [(c["id"], c["case"], c["sentence"]) for c in cases] == [
        ("case-00", 0, "a white block"),
        ("case-01", 1, "green field"),
    ]
    assert set(cases[0]["metrics"]) == {"rsu", "rda", "ras", "rmi"} and cases[0]["annotated"]
    found = state.map("s1", "case-00")
    png = cv2.imread(str(run_folder / "run" / "case_00" / "selo_map.png"), 0)
    np.testing.assert_array_equal(found.finished, png)
    features = json.loads(state.geojson("s1", "case-00"))["features"]
    (annotation,) = [f for f in features if f["properties"]["kind"] == "annotation"]
    assert annotation["geometry"]["coordinates"][0][:4] == [
        [50, 37],
        [133, 37],
        [133, 120],
        [50, 120],
    ]
    assert state.scenes["s1"].tiles is not None  # the scene's pixels are shown
    state.close()


def test_a_run_folder_without_its_images_shows_the_maps(run_folder, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_folder / "run", run)
    state = ServeState.for_run(run, anno=run_folder / "anno.json", images=tmp_path / "nowhere")
    scene = state.scenes["s1"]
    assert scene.tiles is None and (scene.grid.height, scene.grid.width) == (300, 400)
    assert state.map("s1", "case-01").finished.shape == (300, 400)
    state.close()


def test_a_run_folder_is_served_with_its_own_annotations(run_folder, tmp_path):
    """`selo serve RUN_DIR` right after `selo demo`: the run was scored with its own
    annotation file (not the AIR-SLT one shipped with selo), and run.json says which."""
    run = tmp_path / "run"
    shutil.copytree(run_folder / "run", run)
    record = json.loads((run / "run.json").read_text())
    assert record["annotations"]["file"] == str((run_folder / "anno.json").resolve())
    state = ServeState.for_run(run)  # no --anno
    cases = state.history("s1") + state.history("s2")
    assert [c["annotated"] for c in cases] == [True, True, True]
    features = json.loads(state.geojson("s2", "case-02"))["features"]
    (annotation,) = [f for f in features if f["properties"]["kind"] == "annotation"]
    assert annotation["geometry"]["coordinates"][0][:2] == [[50, 37], [133, 37]]
    state.close()


def test_other_annotations_are_refused_in_one_line(run_folder, tmp_path, run_cli):
    other = tmp_path / "anno.json"
    other.write_text(
        json.dumps([{"caption": "blue", "jpg_name": "a.png", "points": [square(1, 1, 9)]}])
    )
    with pytest.raises(RunMismatchError, match="not the annotations the run .* was scored with"):
        ServeState.for_run(run_folder / "run", anno=other)
    code, out, err = run_cli("serve", run_folder / "run", "--anno", other, "--port", "0")
    assert code == 2 and out == "" and err.count("\n") == 1 and str(other) in err
    same = tmp_path / "same.json"  # the same cases in another file: accepted
    shutil.copy(run_folder / "anno.json", same)
    state = ServeState.for_run(run_folder / "run", anno=same)
    assert state.history("s1")[0]["annotated"]
    state.close()


def test_a_run_whose_annotation_file_is_gone_asks_for_it(run_folder, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_folder / "run", run)
    record = json.loads((run / "run.json").read_text())
    record["annotations"]["file"] = str(tmp_path / "moved.json")
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunFolderError, match="moved.json is missing or has changed.*--anno"):
        ServeState.for_run(run)
    del record["annotations"]["file"]  # a run from before runs named their file
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunFolderError, match=r"\(not recorded\)"):
        ServeState.for_run(run)  # its cases are not the AIR-SLT ones shipped with selo
    state = ServeState.for_run(run, anno=run_folder / "anno.json")
    assert state.history("s1")[0]["annotated"]
    state.close()


def test_a_folder_without_finished_cases(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(InputNotFoundError, match="no finished case"):
        ServeState.for_run(tmp_path)


def test_a_run_folder_takes_no_sentences(run_folder):
    from selo.errors import SceneNotReadyError

    state = ServeState.for_run(run_folder / "run", anno=run_folder / "anno.json")
    with pytest.raises(SceneNotReadyError, match="run folder"):
        state.add_sentence("s1", "white")
    state.close()
