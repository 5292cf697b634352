"""MTG-Jamendo as its repository has it: data/autotagging.tsv (tab-separated, one field a tag) and the audio
folder its PATH column is relative to (--audio).  Fixtures built to the collection's description: several
tags a row, NN/ID.mp3 paths with NN the id modulo 100, short synthetic MP3s."""

import numpy as np
import pytest
import soundfile as sf
from support.cli import audioprep

from pipeline import BadInputError, ParameterError
from pipeline.inputs import open_index

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
ROWS = [
    ("track_0000214", "artist_000014", "album_000031", "14/214.mp3", "124.6", ("genre---punkrock",)),
    (
        "track_0000215",
        "artist_000014",
        "album_000031",
        "15/215.mp3",
        "98.1",
        ("genre---punkrock", "instrument---guitar", "mood/theme---energetic"),
    ),
    (
        "track_0001399",
        "artist_000196",
        "album_000200",
        "99/1399.mp3",
        "201.0",
        ("genre---classical", "instrument---piano", "mood/theme---calm", "mood/theme---relaxing"),
    ),
]


@pytest.fixture(scope="module")
def jamendo(tmp_path_factory):
    root = tmp_path_factory.mktemp("jamendo")
    (root / "data").mkdir()
    lines = [HEADER] + ["\t".join([*row[:5], *row[5]]) for row in ROWS]
    (root / "data" / "autotagging.tsv").write_text("\n".join(lines) + "\n")
    for n, row in enumerate(ROWS):
        path = root / "audio" / row[3]
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(n)
        sf.write(path, (0.1 * rng.standard_normal((22050, 2))).astype(np.float32), 44100, format="MP3")
    return root


def test_the_tsv_is_read_with_every_tag_as_written(jamendo):
    """Before: 'not a folder, a manifest .csv or a readable HDF5 file'."""
    index = open_index(jamendo / "data" / "autotagging.tsv", audio=str(jamendo / "audio"))
    assert index.kind == "jamendo"
    assert [(r.rel, r.source, r.tags) for r in index.clips] == [
        (row[3], str(jamendo / "audio" / row[3]), row[5]) for row in ROWS
    ]
    (p,) = index.problems
    assert p.reason == (
        "its 3 track(s) carry tags (genre, instrument, mood/theme), not one genre each: the genres x "
        "clips grid cannot hold them; use --layout clips"
    )


def test_the_grid_is_refused_in_one_line_naming_the_clip_layout(jamendo, tmp_path):
    tsv = jamendo / "data" / "autotagging.tsv"
    p = audioprep(
        "run",
        tsv,
        "--audio",
        jamendo / "audio",
        "-o",
        tmp_path / "o",
        "--mono",
        "--resample",
        "--crop",
        "center",
        "--nsamples",
        4096,
        check=False,
        cwd=tmp_path,
    )  # every clip passes
    assert p.returncode == 3
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith(f"error: {tsv}: its 3 track(s) carry tags")
        and "use --layout clips" in lines[0]
    ), p.stderr
    assert not (tmp_path / "o").exists()


def test_without_its_audio_folder_the_line_says_to_give_it(jamendo):
    with pytest.raises(
        BadInputError,
        match=r"autotagging.tsv: none of the 3 paths it lists exists in .*/data "
        r"\(e.g. 14/214.mp3\); give the folder the audio was downloaded to "
        r"with --audio DIR",
    ):
        open_index(jamendo / "data" / "autotagging.tsv")
    with pytest.raises(
        ParameterError,
        match=r"^--audio names the audio folder of an MTG-Jamendo .tsv, but .* is a "
        r"genres folder ROOT/<genre>/<file>: leave --audio out$",
    ):
        open_index(jamendo / "audio", audio=str(jamendo / "audio"))


def test_the_clip_layout_stores_every_tag_as_written(jamendo, tmp_path):
    """Before: the grid's refusal was all a run of the .tsv gave."""
    from support.compare import read_hdf5

    from pipeline.output.reader import open_dataset

    tsv = jamendo / "data" / "autotagging.tsv"
    args = ["--audio", jamendo / "audio", "--mono", "--resample", "--crop", "center", "--nsamples", 4096]
    audioprep("run", tsv, "-o", tmp_path / "o", "--layout", "clips", *args, cwd=tmp_path)
    arrays, attrs = read_hdf5(tmp_path / "o" / "audio.hdf5")
    names = sorted({t for row in ROWS for t in row[5]})
    assert arrays["tag"].tolist() == names and arrays["tags"].shape == (3, len(names))
    for r, row in enumerate(ROWS):
        assert [t for t, on in zip(names, arrays["tags"][r]) if on] == sorted(row[5])
    assert arrays["source"].tolist() == [row[3] for row in ROWS] and arrays["valid"].all()
    assert attrs["layout"] == "clips" and arrays["label"].tolist() == [0, 0, 0] and "split" not in arrays
    with open_dataset(tmp_path / "o" / "audio.zarr") as ds:
        assert ds.tags.dims == ("clip", "tag") and ds.tags.sel(tag="genre---punkrock").values.tolist() == [1, 1, 0]
