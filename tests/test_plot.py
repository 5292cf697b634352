"""audioprep show: a figure a person can read (checked through its artists and pixels)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from pipeline import PipelineError  # noqa: E402
from pipeline.plot import show_clip, show_summary  # noqa: E402


@pytest.fixture
def output(tiny_output):
    return tiny_output


@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
def test_show_clip_has_waveform_cqt_and_lcn(output, tmp_path, kind):
    png = tmp_path / "clip.png"
    fig = show_clip(output / f"audio.{kind}", genre="classical", clip=1, out=png)
    axes = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("waveform (Xa)") and "Xs" in titles[1] and "Xn" in titles[2]
    # the waveform is the clip's own samples
    import h5py

    with h5py.File(output / "audio.hdf5") as f:
        first = f["Xa"][1, 1, 0, 0]
    line = axes[0].get_lines()[0]
    assert np.array_equal(line.get_ydata()[:1024], first)
    # note-labelled frequency axis from C2 to C6 with Hz; time in seconds
    labels = [t.get_text() for t in axes[1].get_yticklabels()]
    assert labels[0] == "C2\n65.4 Hz" and labels[-1] == "C6\n1046.5 Hz"
    assert axes[2].get_xlabel() == "time (s)"
    # the LCN uses a diverging map centred on 0
    im = axes[2].get_images()[0]
    assert im.get_cmap().name == "RdBu_r" and im.norm.vmin == -im.norm.vmax
    from matplotlib.image import imread

    pixels = imread(png)
    assert pixels.shape[0] > 500 and pixels[..., :3].std() > 0.1  # not blank


def test_show_summary_has_one_column_per_genre(output, tmp_path):
    fig = show_summary(output / "audio.zarr", out=tmp_path / "s.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["blues", "classical", "country"]
    assert ax.get_images()[0].get_array().shape == (96, 3)
    assert (tmp_path / "s.png").stat().st_size > 10000


def test_show_errors_are_clear(output):
    with pytest.raises(PipelineError, match=r"--genre 'polka' is not in .*; choose one of blues, classical, country"):
        show_clip(output / "audio.hdf5", genre="polka", clip=0)
    with pytest.raises(PipelineError, match=r"--clip 5 is out of range; .* holds clips 0 to 1"):
        show_clip(output / "audio.hdf5", genre="blues", clip=5)


@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
def test_show_finds_a_clip_by_its_source(output, kind):
    import h5py

    fig = show_clip(output / f"audio.{kind}", source="classical.00001.au")
    assert fig._suptitle.get_text().startswith("classical/classical.00001.au (genre classical clip 1)")
    with h5py.File(output / "audio.hdf5") as f:  # the slot the source array names, read plainly
        names = [s.decode() for s in f["source"][1]]
        first = f["Xa"][1, names.index("classical/classical.00001.au"), 0, 0]
    assert np.array_equal(fig.axes[0].get_lines()[0].get_ydata()[:1024], first)
    with pytest.raises(PipelineError, match=r"--source 'polka.00001.au' names no clip of .*audio\."):
        show_clip(output / f"audio.{kind}", source="polka.00001.au")
    with pytest.raises(PipelineError, match=r"--source 'blues' names no clip"):  # a part of a name is no match
        show_clip(output / f"audio.{kind}", source="blues")


def test_show_and_info_commands(output, tmp_path):
    from support.cli import audioprep

    p = audioprep("show", output / "audio.hdf5", "--genre", "blues", "--clip", "0", "-o", tmp_path / "clip.png")
    assert "wrote" in p.stdout and (tmp_path / "clip.png").stat().st_size > 20000
    p = audioprep("show", output / "audio.hdf5", "--genre", "blues", check=False)
    assert (
        p.returncode == 2
        and "give --genre NAME and --clip N (in the clip layout --clip N alone), --source FILE, or --summary"
        in p.stderr
    )
    p = audioprep("show", output / "audio.hdf5", "--source", "classical.00001.au", "-o", tmp_path / "s.png")
    assert "wrote" in p.stdout and (tmp_path / "s.png").stat().st_size > 20000
    info = audioprep("info", output / "audio.hdf5").stdout
    assert "labels: blues, classical, country" in info and "provenance:" in info


def test_show_without_matplotlib_says_how_to_install(output, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['matplotlib'] = None; from pipeline.cli import main; "
        f"main(['show', {str(output / 'audio.hdf5')!r}, '--genre', 'blues', '--clip', '0', '-o', "
        f"{str(tmp_path / 'x.png')!r}])"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "needs matplotlib; install it with: pip install matplotlib" in p.stderr


def test_summary_averages_each_clip_over_its_own_frames_only(padded_output):
    """Before: --pad-short's zeros were averaged in, so a genre of short clips looked 30 to 40 dB quieter."""
    import h5py

    fig = show_summary(padded_output)
    ax = fig.axes[0]
    assert "own frames" in ax.get_title()
    shown = np.ma.getdata(ax.images[0].get_array())  # dB re the largest mean, bins x genres
    with h5py.File(padded_output) as f:  # the plain rule: valid clips, each over the frames inside its samples
        na, F = int(f.attrs["na"]), f["Xs"].shape[2]
        means = []
        for g in range(2):
            per_clip = [
                f["Xs"][g, c, : min(F, (int(f["samples"][g, c]) - na // 2) // na)].mean(axis=(0, 1))
                for c in range(2)
                if f["valid"][g, c]
            ]
            means.append(np.mean(per_clip, axis=0))
    mean = np.stack(means, axis=1)
    want = 20 * np.log10(np.maximum(mean, mean.max() * 1e-5) / mean.max())
    assert np.allclose(shown, want, atol=1e-4)


def test_show_marks_where_a_padded_clips_own_samples_end(padded_output):
    """blues clip 1 is 1 s of its own, zero-padded by --pad-short: every panel marks 1.00 s; a full clip has no
    mark."""
    import h5py

    with h5py.File(padded_output) as f:
        end = int(f["samples"][0, 1]) / int(f.attrs["sr"])
    assert abs(end - 1.0) < 1e-9
    fig = show_clip(padded_output, genre="blues", clip=1, seconds=3.0)
    assert "its own samples end at 1.00 s" in fig._suptitle.get_text()
    panels = [
        ax
        for ax in fig.axes
        if ax.get_ylabel() != "" and "dB" not in ax.get_ylabel() and "normalized" not in ax.get_ylabel()
    ]
    assert len(panels) == 3
    for ax in panels:
        marks = [ln for ln in ax.get_lines() if ln.get_label() == "end of the clip's own samples"]
        assert len(marks) == 1 and np.allclose(marks[0].get_xdata(), end)
    full = show_clip(padded_output, genre="blues", clip=0)
    assert not any(ln.get_label() == "end of the clip's own samples" for ax in full.axes for ln in ax.get_lines())
    assert "own samples end" not in full._suptitle.get_text()


@pytest.mark.parametrize("which", ["padded_output", "tiny_output"], ids=["2 genres", "3 genres"])
def test_the_summarys_title_fits_the_figure(which, request):
    """Before: with 2 or 3 genres the title was wider than the figure, cut on both sides."""
    src = request.getfixturevalue(which)
    src = src if src.name == "audio.hdf5" else src / "audio.hdf5"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = show_summary(src)
    canvas = FigureCanvasAgg(fig)  # as 'audioprep show' draws it
    canvas.draw()
    box = fig.axes[0].title.get_window_extent(canvas.get_renderer())
    width, height = canvas.get_width_height()
    assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height, (box, width, height)


def test_a_legend_names_only_lines_in_view(padded_output):
    """Before: with a 0.5-s waveform the legend named the padding mark at 1.00 s, outside the waveform's window."""
    fig = show_clip(padded_output, genre="blues", clip=1, seconds=0.5)
    wave = fig.axes[0]
    assert wave.get_title().startswith("waveform") and wave.get_xlim()[1] < 1.0
    assert not [ln for ln in wave.get_lines() if ln.get_label() == "end of the clip's own samples"]
    legends = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    for ax in legends:
        lo, hi = ax.get_xlim()
        for ln in ax.get_lines():
            if not ln.get_label().startswith("_"):
                assert all(lo <= x <= hi for x in ln.get_xdata()), (ax.get_title(), ln.get_label())


def test_info_names_one_length_once(padded_output):
    """Before: 'their own 22050 to 22050 samples (1.00 to 1.00 s ...)' where every padded clip has one length."""
    from pipeline.output import describe

    padded = [ln for ln in describe(padded_output).splitlines() if ln.startswith("padded: ")]
    assert padded == [
        "padded: 1 valid clip(s) zero-padded to Nsamples=66136 (--pad-short), their own 22050 samples "
        "(1.00 s: the 'samples' array); the loaders leave the padding out"
    ]


def test_a_slot_no_clip_fills_is_titled_missing_not_bad(client, tmp_path):
    """Before: a slot --pad left empty was drawn as '(INVALID: zero-filled bad clip)'."""
    import numpy as np
    from support.data import SMALL, SR, genre_folder

    from pipeline.params import Params
    from pipeline.run import run

    rng = np.random.default_rng(3)
    root = genre_folder(tmp_path / "in", {"blues": 2, "jazz": 1}, lambda g, c: 0.1 * rng.standard_normal(3 * SR))
    run(root, tmp_path / "o", Params(**SMALL), client=client, pad=True)
    title = show_clip(tmp_path / "o" / "audio.hdf5", genre="jazz", clip=1)._suptitle.get_text()
    assert title.endswith("(MISSING: no clip, --pad)") and "bad clip" not in title
    assert "MISSING" not in show_clip(tmp_path / "o" / "audio.hdf5", genre="jazz", clip=0)._suptitle.get_text()
