"""SCENES arguments become scene sources: files, folders, globs, in order."""

from __future__ import annotations

from pathlib import Path

from selo.pipeline.collection import collection_sources


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_files_folders_and_globs_in_order(tmp_path):
    a = touch(tmp_path / "tiles" / "b.tif")
    b = touch(tmp_path / "tiles" / "a.TIF")  # suffixes in any case
    c = touch(tmp_path / "tiles" / "sub" / "c.jpg")
    notes = touch(tmp_path / "tiles" / "notes.txt")  # not a raster suffix: not from a folder
    touch(tmp_path / "tiles" / ".hidden.tif")
    touch(tmp_path / "tiles" / ".cache" / "d.tif")
    single = touch(tmp_path / "one.png")
    assert collection_sources([tmp_path / "tiles"]) == [b, a, c]
    assert collection_sources([str(tmp_path / "tiles" / "*.tif")]) == [a]
    assert collection_sources([str(tmp_path / "**" / "*.jpg")]) == [c]
    # a glob passes what it matches (files whatever their names, as a shell does)
    assert collection_sources([single, str(tmp_path / "tiles" / "*")]) == [single, b, a, notes, c]


def test_a_file_is_taken_whatever_its_name_and_a_missing_one_is_kept(tmp_path):
    notes = touch(tmp_path / "notes.txt")
    missing = tmp_path / "missing.tif"
    assert collection_sources([notes, missing]) == [notes, missing]


def test_nothing_matched_gives_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert collection_sources([tmp_path / "empty", str(tmp_path / "*.tif")]) == []
    assert collection_sources([]) == []


def test_a_name_twice_is_kept_twice(tmp_path):
    a = touch(tmp_path / "a.tif")
    assert collection_sources([a, tmp_path]) == [a, a]
