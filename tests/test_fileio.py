"""Atomic writes leave either the complete new file or the untouched old one."""
import os

import pytest

from stylegan_unlearn.fileio import atomic_write, atomic_write_bytes, atomic_write_text


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_bytes_and_text_round_trip(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01payload")
    atomic_write_text(tmp_path / "b.txt", "héllo\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01payload"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_content_and_keeps_mode(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640


def test_new_file_gets_umask_mode_not_private_tempfile_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "n.bin", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "n.bin").stat().st_mode & 0o777 == 0o644


def test_exception_leaves_target_untouched_and_removes_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as handle:
            handle.write("partial")
            assert _leftovers(tmp_path), "writes must go to a temp file beside the target"
            raise RuntimeError("boom")
    assert target.read_text() == "original"
    assert _leftovers(tmp_path) == []


def test_exception_on_new_file_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.bin") as handle:
            handle.write(b"abc")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_exclusive_mode_refuses_existing_target(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_write(target, "xb") as handle:
            handle.write(b"no")
    assert target.read_bytes() == b"keep"


def test_missing_directory_and_bad_mode_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "f.bin", b"")
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "f", "r"):
            pass
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "f", "ab"):
            pass
