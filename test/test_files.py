"""One way to put a file or folder in place (liteseg_ros.files): complete or absent, and readable by another user
as the umask allows (a checkpoint, an ONNX export or a plot written by one user is read by the ``ros`` user)."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from liteseg_ros.errors import ConfigError
from liteseg_ros.files import atomic_file, atomic_folder, current_umask, write_text
from liteseg_ros.model import build_liteseg, save_checkpoint

from conftest import installed_script


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for a test and restore it."""
    previous = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(previous)


def test_the_umask_is_read_without_changing_it(umask):
    umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                          (0o077, 0o600, 0o700)])
def test_files_and_folders_get_the_modes_of_plainly_created_ones(tmp_path, umask, mask, file_mode, folder_mode):
    umask(mask)
    assert mode(write_text(tmp_path / "a" / "b.txt", "x")) == file_mode  # parents created
    assert mode(tmp_path / "a") == folder_mode
    save_checkpoint(tmp_path / "model.pt", build_liteseg("mobilenetv2", num_classes=3))
    assert mode(tmp_path / "model.pt") == file_mode
    with atomic_folder(tmp_path / "tree") as staging:
        (staging / "inner.txt").write_text("y")
    assert mode(tmp_path / "tree") == folder_mode and (tmp_path / "tree" / "inner.txt").read_text() == "y"


def test_an_error_leaves_the_old_file_and_nothing_else(tmp_path):
    target = write_text(tmp_path / "report.json", "old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(tmp_path / "tree") as staging:
            (staging / "part.txt").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_folder_never_lands_on_one_another_process_filled(tmp_path):
    """Two writers of the same folder at once: one wins, the other is told; the winner's files are whole."""
    out, results, ready = tmp_path / "entry", {}, threading.Barrier(2)

    def write(name: str) -> None:
        try:
            with atomic_folder(out) as staging:
                (staging / "who").write_text(name)
                ready.wait()
            results[name] = "placed"
        except FileExistsError:
            results[name] = "refused"

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["placed", "refused"]
    assert (out / "who").read_text() == next(name for name, result in results.items() if result == "placed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_a_parent_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        write_text(tmp_path / "file" / "x.txt", "x")


def test_a_tool_writes_its_file_0644_under_umask_022(tmp_path):
    """liteseg-export run as a user runs it, under umask 022: the ONNX file another user's node reads is 0644."""
    out = tmp_path / "net.onnx"
    run = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" "$@"', str(installed_script("liteseg-export")),
                          "--backbone", "mobilenetv2", "--size", "64x64", "-o", str(out), "--no-verify"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert mode(out) == 0o644 and sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]
