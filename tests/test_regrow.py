"""Inputs that grow or change (pipeline/output/regrow.py): the finished clips of unchanged files are kept in their
new rows or slots and only new or changed files are computed, against the serial reference and a fresh run."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.compare import assert_matches_reference, assert_same_output, read_hdf5
from support.data import SMALL, SR, genre_folder
from support.reference import reference_folder, reference_rows

from pipeline.exceptions import UnsafeOutputError
from pipeline.output import regrow
from pipeline.params import Params
from pipeline.run import run

pytestmark = pytest.mark.slow


def _clip(g, c, seconds=3.0):
    rng = np.random.default_rng(1000 + 100 * g + c)
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * (120 + 40 * g + 9 * c) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def _rows_reference(root):
    """Each clip's reference arrays, one row a clip in (genre, file) order, with its label."""
    arrays, _, labels, _ = reference_rows(root, Nsamples=SMALL["nsamples"])
    return arrays, labels


def _inodes(store: Path, name: str = "Xs") -> dict:
    return {p.name: p.stat().st_ino for p in (store / name).iterdir() if p.name.startswith("c.")}


def test_a_file_added_computes_one_clip_in_the_clip_layout_and_equals_a_fresh_run(client, tmp_path):
    root = genre_folder(tmp_path / "in", {"blues": 3, "jazz": 2, "rock": 1}, _clip)
    params = Params(**SMALL, layout="clips")
    first = run(root, tmp_path / "o", params, client=client)
    assert first.computed == 6
    before = _inodes(tmp_path / "o" / "audio.zarr")
    sf.write(root / "jazz" / "jazz.00000a.wav", _clip(7, 7), SR)  # sorts second in jazz: the rows after it move

    said = []
    grown = run(root, tmp_path / "o", params, client=client, echo=said.append)

    assert grown.computed == 1 and grown.resumed == 6 and grown.clips == 7 and not grown.bad
    assert grown.input_changes == {"added": 1, "changed": 0, "removed": 0, "reused": 6, "removed_files": []}
    assert any(
        line.startswith(
            "resuming: the input changed since the store was made (1 file(s) added, 0 changed, "
            "0 removed): 6 finished clip(s) of unchanged files kept in "
        )
        and line.endswith("1 clip(s) to compute")
        for line in said
    ), said
    # The kept clips' chunks are the first run's files (linked into their new rows), not computed again.
    after = _inodes(tmp_path / "o" / "audio.zarr")
    moved = {"c.0.0.0.0": "c.0.0.0.0", "c.3.0.0.0": "c.3.0.0.0", "c.4.0.0.0": "c.5.0.0.0", "c.5.0.0.0": "c.6.0.0.0"}
    for old, new in moved.items():
        assert after[new] == before[old], (old, new)
    assert after["c.4.0.0.0"] not in before.values()  # the new file's row: computed by this run

    arrays, attrs = read_hdf5(tmp_path / "o" / "audio.hdf5")
    want, labels = _rows_reference(root)
    assert arrays["label"].tolist() == labels == [0, 0, 0, 1, 1, 1, 2]
    assert arrays["source"].tolist()[4] == "jazz/jazz.00000a.wav" and arrays["valid"].all()
    assert np.array_equal(arrays["Xa"], want["Xa"])
    for row in range(7):  # docs/numerics.md: within 1e-5 of each clip's maximum
        assert np.abs(arrays["Xs"][row] - want["Xs"][row]).max() <= 1e-5 * np.abs(want["Xs"][row]).max(), row
    assert np.abs(arrays["Xn"] - want["Xn"]).max() <= 1e-4

    fresh = run(root, tmp_path / "fresh", params, client=client)
    assert fresh.computed == 7
    assert_same_output(tmp_path / "o" / "audio.hdf5", tmp_path / "fresh" / "audio.hdf5")
    again = run(root, tmp_path / "o", params, client=client)
    assert again.up_to_date and again.computed == 0


def test_changed_added_and_removed_files_in_the_grid_compute_only_those(client, tmp_path):
    root = genre_folder(tmp_path / "in", {"blues": 3, "jazz": 3}, _clip, ext=".au", format="AU", subtype="FLOAT")
    params = Params(**SMALL)
    assert run(root, tmp_path / "o", params, client=client).computed == 6
    sf.write(root / "blues" / "blues.00001.au", _clip(5, 5), SR, format="AU", subtype="FLOAT")  # changed
    os.utime(root / "blues" / "blues.00001.au", ns=(1, 1))  # (a rewrite within the clock's tick is still seen)
    (root / "jazz" / "jazz.00000.au").unlink()  # removed: jazz's clips move up a slot
    for genre in ("blues", "jazz"):  # added: each genre one more (the grid grows to 2 x 3 ... 4)
        sf.write(root / genre / f"{genre}.00009.au", _clip(8, len(genre)), SR, format="AU", subtype="FLOAT")
    sf.write(root / "jazz" / "jazz.00010.au", _clip(9, 9), SR, format="AU", subtype="FLOAT")

    got = run(root, tmp_path / "o", params, client=client)

    assert got.input_changes == {
        "added": 3,
        "changed": 1,
        "removed": 1,
        "reused": 4,
        "removed_files": ["jazz/jazz.00000.au"],
    }
    assert got.computed == 4 and got.resumed == 4 and got.clips == 8
    assert_matches_reference(tmp_path / "o" / "audio.hdf5", reference_folder(root, Nsamples=SMALL["nsamples"]))
    arrays, _ = read_hdf5(tmp_path / "o" / "audio.hdf5")
    assert arrays["source"][1].tolist() == [
        "jazz/jazz.00001.au",
        "jazz/jazz.00002.au",
        "jazz/jazz.00009.au",
        "jazz/jazz.00010.au",
    ]


def test_other_parameters_still_refuse(client, tmp_path):
    from pipeline import StoreError

    root = genre_folder(tmp_path / "in", {"blues": 2, "jazz": 2}, _clip)
    run(root, tmp_path / "o", Params(**SMALL, layout="clips"), client=client)
    sf.write(root / "jazz" / "jazz.00007.wav", _clip(3, 3), SR)
    with pytest.raises(StoreError, match=r"other parameters \(lcn_sigma: 2.0 -> 3.0\).*; use --overwrite"):
        run(root, tmp_path / "o", Params(**SMALL, layout="clips", lcn_sigma=3.0), client=client)
    assert len(_inodes(tmp_path / "o" / "audio.zarr")) == 4  # the store untouched


def test_a_run_killed_between_the_two_renames_resumes_from_the_old_store(client, tmp_path):
    root = genre_folder(tmp_path / "in", {"blues": 2, "jazz": 2}, _clip)
    params = Params(**SMALL, layout="clips")
    run(root, tmp_path / "o", params, client=client)
    store = tmp_path / "o" / "audio.zarr"
    # What a kill after the first of rename_twice's renames leaves: the old store aside, a new one half built.
    os.rename(store, regrow.previous_path(store))
    (tmp_path / "o" / ".audio.zarr.x1y2.partial").mkdir()
    sf.write(root / "blues" / "blues.00005.wav", _clip(4, 4), SR)

    got = run(root, tmp_path / "o", params, client=client)

    assert got.computed == 1 and got.input_changes["reused"] == 4
    assert not regrow.previous_path(store).exists() and not list((tmp_path / "o").glob(".audio.zarr.*"))
    want, _ = _rows_reference(root)
    arrays, _ = read_hdf5(tmp_path / "o" / "audio.hdf5")
    assert np.array_equal(arrays["Xa"], want["Xa"])


def test_recover_and_the_two_rename_exchange(tmp_path):
    path, new = tmp_path / "audio.zarr", tmp_path / ".audio.zarr.abc.partial"
    path.mkdir(), new.mkdir()
    (path / "old").touch(), (new / "new").touch()
    regrow.rename_twice(new, path)  # the exchange where the file system has no RENAME_EXCHANGE
    assert os.listdir(path) == ["new"] and os.listdir(new) == ["old"]
    regrow.exchange(new, path)
    assert os.listdir(path) == ["old"] and os.listdir(new) == ["new"]
    previous = regrow.previous_path(path)
    os.rename(path, previous)  # killed after the first rename: the old store is put back
    regrow.recover(path)
    assert os.listdir(path) == ["old"] and not previous.exists()
    previous.mkdir()  # killed after the second: the new store stays, the old one goes
    regrow.recover(path)
    assert os.listdir(path) == ["old"] and not previous.exists()
    previous.symlink_to(new)  # a link planted in its place: refused, naming it, and nothing moved or removed
    with pytest.raises(UnsafeOutputError, match=r"\.audio\.zarr\.previous is a link"):
        regrow.recover(path)
    assert previous.is_symlink() and os.listdir(new) == ["new"]
    previous.unlink()
    previous.mkdir()
    (previous / "zarr.json").symlink_to(new / "new")  # a link inside it: refused too
    with pytest.raises(UnsafeOutputError, match=r"zarr\.json is a link"):
        regrow.recover(path)


def test_a_grown_store_an_unfinished_run_left_is_resumed_not_refused(client, tmp_path):
    """The store was made anew for the grown input by a run that did not finish audio.hdf5 (a bad clip, a kill):
    the next run resumes from it instead of asking for --overwrite.  Here a Zarr-only run grows the store, and
    removes the audio.hdf5 that no longer matches it, saying so; that file put back is the state to resume from."""
    import shutil

    root = genre_folder(tmp_path / "in", {"blues": 2, "jazz": 2}, _clip)
    params = Params(**SMALL, layout="clips")
    run(root, tmp_path / "o", params, client=client)
    shutil.copy(tmp_path / "o" / "audio.hdf5", tmp_path / "old.hdf5")
    sf.write(root / "jazz" / "jazz.00003.wav", _clip(5, 1), SR)
    said = []
    assert run(root, tmp_path / "o", params, client=client, output_format="zarr", echo=said.append).computed == 1
    assert not (tmp_path / "o" / "audio.hdf5").exists()  # stale: it held the input as it was
    assert any(
        line.startswith(f"removed {tmp_path / 'o' / 'audio.hdf5'}, made by an earlier run: it was made from the same")
        for line in said
    ), said
    shutil.copy(tmp_path / "old.hdf5", tmp_path / "o" / "audio.hdf5")

    got = run(root, tmp_path / "o", params, client=client)

    assert got.computed == 0 and got.resumed == 5 and not got.up_to_date
    want, _ = _rows_reference(root)
    arrays, _ = read_hdf5(tmp_path / "o" / "audio.hdf5")
    assert arrays["valid"].all() and np.array_equal(arrays["Xa"], want["Xa"])


def test_a_zarr_only_output_grows_the_same_way(client, tmp_path):
    import zarr

    root = genre_folder(tmp_path / "in", {"blues": 2, "jazz": 2}, _clip)
    params = Params(**SMALL, layout="clips")
    assert run(root, tmp_path / "o", params, client=client, output_format="zarr").computed == 4
    sf.write(root / "blues" / "blues.00000b.wav", _clip(6, 6), SR)

    got = run(root, tmp_path / "o", params, client=client, output_format="zarr")

    assert got.computed == 1 and got.input_changes["reused"] == 4
    assert not list((tmp_path / "o").glob("*.hdf5")) and not list((tmp_path / "o").glob(".audio.zarr*"))
    store = zarr.open_group(str(tmp_path / "o" / "audio.zarr"), mode="r")
    assert store.attrs["complete"] is True and store["valid"][...].all()
    want, labels = _rows_reference(root)
    assert store["label"][...].tolist() == labels and np.array_equal(store["Xa"][...], want["Xa"])
    for row in range(5):
        assert np.abs(store["Xs"][row] - want["Xs"][row]).max() <= 1e-5 * np.abs(want["Xs"][row]).max(), row
