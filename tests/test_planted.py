"""What another user can plant in a shared output folder, and an output folder removed under a run.

The other user is real: ``nobody`` (uid 65534) makes the links itself, from a
process that dropped root's identity before it touched the folder, in a
1777 folder as ``/tmp`` is.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.cli import audioprep, finished, lines, start, wait_until
from support.data import SMALL_ARGS

pytestmark = pytest.mark.slow

NOBODY = 65534


def as_nobody(code: str) -> None:
    """Run ``code`` (stdlib only) as the user nobody: the interpreter starts as root, then drops to nobody."""
    if os.getuid() != 0:
        pytest.skip("needs root, to act as a second user")
    prelude = f"import os, shutil, sys; os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY}); "
    subprocess.run([sys.executable, "-c", prelude + code], check=True, timeout=60)


@pytest.fixture
def public(tiny_dataset):
    """A folder every user can reach (a pytest folder is root's alone), holding a copy of the tiny dataset."""
    base = Path(tempfile.mkdtemp(prefix="audioprep-planted-"))
    os.chmod(base, 0o755)
    shutil.copytree(tiny_dataset, base / "genres")
    shared = base / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    yield base
    shutil.rmtree(base)


def test_a_store_another_user_planted_as_a_link_is_refused(public):
    """Before: root's run took nobody's linked store as its own, wrote a clip's chunk through nobody's link
    (overwriting root's file) and took nobody's chunks into its audio.hdf5 as valid clips."""
    inp, shared = public / "genres", public / "shared"
    theirs = public / "theirs"
    audioprep("run", inp, "-o", theirs, *SMALL_ARGS, "--workers", "1", "-q", cwd=public)
    (theirs / "audio.hdf5").unlink()
    for p in [theirs, *theirs.rglob("*")]:
        os.lchown(p, NOBODY, NOBODY)  # nobody's own store, of the same input and parameters
    victim = public / "victim.txt"  # root's file
    victim.write_text("precious\n")
    chunk = theirs / "audio.zarr" / "Xa" / "c.1.0.0.0.0"
    as_nobody(
        f"os.remove({str(chunk)!r}); os.symlink({str(victim)!r}, {str(chunk)!r}); "
        f"os.remove({str(theirs / 'audio.zarr' / 'done' / 'c.1.0')!r}); "
        f"os.symlink({str(theirs / 'audio.zarr')!r}, {str(shared / 'audio.zarr')!r})"
    )
    assert (shared / "audio.zarr").lstat().st_uid == NOBODY
    p = audioprep("run", inp, "-o", shared, *SMALL_ARGS, "--workers", "1", cwd=public, check=False)
    assert victim.read_text() == "precious\n"
    assert p.returncode == 1 and lines(p.text) == [
        (
            f"error: {shared / 'audio.zarr'} is a link (to {theirs / 'audio.zarr'}): audioprep never writes through a "
            "link or into another user's files; remove it (or choose another -o) and run again"
        )
    ], p.text
    assert sorted(x.name for x in shared.iterdir()) == ["audio.zarr"]  # nothing written beside it


@pytest.mark.parametrize("entry", ["audio.zarr", "audio.hdf5"])
def test_an_output_another_user_made_is_refused(public, entry):
    """nobody copies a finished output into the shared folder as its own files: root's run neither trusts its
    audio.hdf5 as up to date nor resumes its store."""
    inp, shared = public / "genres", public / "shared"
    audioprep("run", inp, "-o", public / "first", *SMALL_ARGS, "--workers", "1", "-q", cwd=public)
    for p in [public / "first", *(public / "first").rglob("*")]:
        os.lchown(p, NOBODY, NOBODY)
    as_nobody(
        f"shutil.copytree({str(public / 'first' / 'audio.zarr')!r}, {str(shared / 'audio.zarr')!r}) "
        f"if {entry!r} == 'audio.zarr' else shutil.copy({str(public / 'first' / 'audio.hdf5')!r}, "
        f"{str(shared / 'audio.hdf5')!r})"
    )
    p = audioprep("run", inp, "-o", shared, *SMALL_ARGS, "--workers", "1", cwd=public, check=False)
    assert p.returncode == 1 and lines(p.text) == [
        (
            f"error: {shared / entry} belongs to nobody, not to root who runs audioprep: audioprep never writes "
            "through a link or into another user's files; remove it (or choose another -o) and run again"
        )
    ], p.text
    assert sorted(x.name for x in shared.iterdir()) == [entry]


def test_a_chunk_replaced_by_a_link_is_not_written_through(tiny_dataset, tmp_path):
    """A clip's chunk file in the run's own store, replaced by a link before the clip is computed: the run
    refuses it in one line and the link's target is untouched (before: Path.write_bytes followed it)."""
    out = tmp_path / "out"
    audioprep("run", tiny_dataset, "-o", out, *SMALL_ARGS, "--workers", "1", "-q", cwd=tmp_path)
    (out / "audio.hdf5").unlink()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    chunk = out / "audio.zarr" / "Xs" / "c.2.1.0.0.0"
    chunk.unlink()
    chunk.symlink_to(victim)
    (out / "audio.zarr" / "done" / "c.2.1").unlink()  # so the next run computes that clip again
    p = audioprep("run", tiny_dataset, "-o", out, *SMALL_ARGS, "--workers", "1", cwd=tmp_path, check=False)
    assert victim.read_text() == "precious\n"
    assert p.returncode == 1 and lines(p.text)[-1] == (
        f"error: {chunk} is a link: audioprep never writes through a link or into another user's files; remove "
        "it (or choose another -o) and run again"
    ), p.text
    assert "Traceback" not in p.text and not (out / "audio.hdf5").exists()


def test_the_output_folder_removed_while_the_workers_write_is_one_line(many_clips, tmp_path):
    """Before: 'error: unexpected KeyError: 'done'', exit 70."""
    out = tmp_path / "out"
    proc = start([many_clips, "-o", out, "--workers", "2", "-q"], tmp_path)
    wait_until(lambda: finished(out) >= 1, proc)
    shutil.rmtree(out, ignore_errors=True)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1 and lines(text) == [
        (
            f"error: {out / 'audio.zarr'} was removed while the run wrote into it (the output folder is gone, or its "
            "store): nothing is left to resume; run the same command again to start afresh"
        )
    ], text


def test_another_users_store_is_refused_to_a_non_root_run(public):
    """The reverse: root's store left in the shared folder, and nobody runs there.  nobody's run (a real process
    of that user: it imports audioprep as root, the only user who can read this Python, then drops to nobody)
    refuses it in one line before anything starts, instead of resuming a store it cannot write."""
    inp, shared = public / "genres", public / "shared"
    (shared / "audio.zarr").mkdir()  # root's
    code = (
        f"import os, sys, difflib, json, tempfile; import pipeline.cli, pipeline.run, pipeline.api; "
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY}); "
        f"sys.argv = ['audioprep', 'run', {str(inp)!r}, '-o', {str(shared)!r}, *{SMALL_ARGS!r}, '--workers', '1']; "
        "pipeline.cli.main()"
    )
    if os.getuid() != 0:
        pytest.skip("needs root, to act as a second user")
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=public,
        check=False,
        env={**os.environ, "HOME": str(public)},
    )
    assert p.returncode == 1 and lines(p.stdout + p.stderr) == [
        (
            f"error: {shared / 'audio.zarr'} belongs to root, not to nobody who runs audioprep: audioprep never writes "
            "through a link or into another user's files; remove it (or choose another -o) and run again"
        )
    ], p.stderr
    assert sorted(x.name for x in shared.iterdir()) == ["audio.zarr"]
