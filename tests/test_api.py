"""pipeline.preprocess, the Python entry point: the caller's own Client, the same checks as the command line, the
run's numbers returned; and a real notebook executed in a real Jupyter kernel."""

import json

import numpy as np
import pytest
from support.compare import assert_matches_reference, read_hdf5
from support.data import SMALL

import pipeline
from pipeline import ParameterError, preprocess

pytestmark = pytest.mark.slow


def test_preprocess_with_the_callers_client_matches_the_reference_and_leaves_it_open(
    tiny_dataset, reference, client, tmp_path
):
    res = preprocess(tiny_dataset, tmp_path / "out", client=client, progress=False, **SMALL)
    assert (res.computed, res.resumed, res.bad, res.clips) == (6, 0, [], 6)
    assert res.output_path == str(tmp_path / "out" / "audio.hdf5") and res.output_format == "hdf5"
    assert_matches_reference(res.output_path, reference)
    summary = json.loads((tmp_path / "out" / "audio.summary.json").read_text())
    assert {k: summary[k] for k in ("computed", "clips", "bytes_written")} == {
        k: res.to_json()[k] for k in ("computed", "clips", "bytes_written")
    }
    # the client is the caller's: still connected, with no work of the run left on it
    assert client.status == "running" and not client.futures
    assert client.submit(sum, [1, 2]).result() == 3
    # the same command again is up to date
    assert preprocess(tiny_dataset, tmp_path / "out", client=client, progress=False, **SMALL).up_to_date


def test_preprocess_refuses_what_the_command_line_refuses_with_the_same_words(tiny_dataset, client, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    with pytest.raises(ParameterError) as e:
        preprocess(tiny_dataset, tmp_path / "o", client=client, progress=False, nsamples=1.5)
    r = CliRunner().invoke(main, ["run", str(tiny_dataset), "-o", str(tmp_path / "o"), "--nsamples", "1.5"])
    # the same rule; each names what its caller typed
    rule = "nsamples=1.5 must be a whole number from 1 to 9223372036854775807 (sys.maxsize)"
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {rule} (--nsamples or params.nsamples)"
    assert str(e.value) == f"{rule} (nsamples or params.nsamples)"
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \(nsample: did you mean nsamples\?\)"):
        preprocess(tiny_dataset, tmp_path / "o", client=client, nsample=100)
    assert not (tmp_path / "o").exists()


def test_a_real_notebook_runs_preprocess_on_its_own_local_cluster(tiny_dataset, tmp_path):
    """The notebook a user writes: its own LocalCluster and Client, preprocess, then open_dataset on the output.
    Executed cell by cell by nbclient in an ipykernel; its cells' outputs and the file are checked."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    out = tmp_path / "nb-out"
    cells = [
        "from distributed import Client, LocalCluster\n"
        "cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address='127.0.0.1:0')\n"
        "client = Client(cluster)",
        "import pipeline\n"
        f"res = pipeline.preprocess({str(tiny_dataset)!r}, {str(out)!r}, client=client, nsamples={SMALL['nsamples']})\n"
        "print('computed', res.computed, 'of', res.clips)",
        "ds = pipeline.open_dataset(res.output_path)\n"
        "print('Xn', ds.Xn.dims, ds.Xn.shape)\n"
        "print('genres', list(ds.genre.values))",
        "print('client open', client.status, len(client.futures))",
        # progress off runs no progress code; on, in a kernel without ipywidgets, tqdm's text bar, quietly
        f"again = pipeline.preprocess({str(tiny_dataset)!r}, {str(out)!r}, client=client, progress=False, "
        f"nsamples={SMALL['nsamples']})\n"
        "print('again up to date', again.up_to_date)\n"
        "client.close(); cluster.close()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    def printed(i):
        return "".join(o.get("text", "") for o in nb.cells[i].outputs if o.get("name") == "stdout")

    assert "computed 6 of 6" in printed(1)
    assert (
        f"Xn ('genre', 'clip', 'frame', 'overlap', 'bin') (3, 2, {pipeline.Params(**SMALL).nframes}, 2, 96)"
        in printed(2)
    )
    assert "genres ['blues', 'classical', 'country']" in printed(2)
    assert "client open running 0" in printed(3)
    assert "again up to date True" in printed(4)
    # Before: "TqdmWarning: IProgress not found" from the kernel, even with progress=False.
    said = "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        assert "IProgress" not in said and "Warning" not in said, said
    arrays, _ = read_hdf5(out / "audio.hdf5")
    assert arrays["valid"].all() and np.abs(arrays["Xs"]).max() > 0


def test_preprocess_says_no_zarr_warning(tiny_dataset, client, tmp_path):
    """Before: a ZarrUserWarning about consolidated metadata showed up in Python (the CLI hid it)."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        preprocess(tiny_dataset, tmp_path / "out", client=client, progress=False, **SMALL)
    assert [str(w.message) for w in seen if "onsolidated" in str(w.message)] == []


def test_a_complete_run_without_its_store_is_still_up_to_date(tiny_dataset, client, tmp_path):
    """Users on scratch quotas delete audio.zarr once audio.hdf5 is complete: the same run must not recompute."""
    import shutil

    from click.testing import CliRunner

    from pipeline.cli import main

    out = tmp_path / "out"
    r = CliRunner().invoke(
        main, ["run", str(tiny_dataset), "-o", str(out), "--nsamples", str(SMALL["nsamples"]), "--workers", "2"]
    )
    assert r.exit_code == 0, r.output
    assert (
        f"{out / 'audio.zarr'} is needed only to resume this run or, when files are added to the input, to keep "
        "the finished clips: deleting it costs nothing otherwise (the same command still finds audio.hdf5 up to date)"
    ) in r.stderr.splitlines()
    before = (out / "audio.hdf5").stat().st_mtime_ns
    shutil.rmtree(out / "audio.zarr")
    again = preprocess(tiny_dataset, out, client=client, progress=False, **SMALL)
    assert again.up_to_date and again.computed == 0
    assert (out / "audio.hdf5").stat().st_mtime_ns == before and not (out / "audio.zarr").exists()


def test_preprocess_errors_name_keyword_arguments_where_the_cli_names_flags(client, tmp_path):
    import soundfile as sf
    from click.testing import CliRunner

    from pipeline import BadInputError
    from pipeline.cli import main

    root = tmp_path / "genres"
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(3)
    sf.write(root / "a" / "stereo.wav", rng.uniform(-0.3, 0.3, (SMALL["nsamples"] * 2 + 10, 2)), 44100)
    sf.write(root / "a" / "short.wav", rng.uniform(-0.3, 0.3, 22050), 22050)
    with pytest.raises(BadInputError) as e:
        preprocess(root, tmp_path / "o", client=client, progress=False, nsamples=SMALL["nsamples"])
    text = str(e.value)
    assert (
        "(use mono=True, resample=True)" in text
        and "(use pad_short=True to keep it zero-padded, or a smaller nsamples)" in text
    )
    assert text.splitlines()[-1].endswith("all 2 pass with mono=True, resample=True, pad_short=True")
    assert "--" not in text
    assert [p.reason for p in e.value.problems][0].endswith(
        "(use pad_short=True to keep it zero-padded, or a smaller nsamples)"
    )
    r = CliRunner().invoke(main, ["run", str(root), "-o", str(tmp_path / "o"), "--nsamples", str(SMALL["nsamples"])])
    assert r.exit_code == 3 and r.stderr.strip().endswith("all 2 pass with --mono --resample --pad-short")

    preprocess(
        root,
        tmp_path / "o",
        client=client,
        progress=False,
        nsamples=SMALL["nsamples"],
        mono=True,
        resample=True,
        pad_short=True,
    )
    with pytest.raises(pipeline.StoreError, match=r"use overwrite=True to replace it, or another outdir$"):
        preprocess(
            root,
            tmp_path / "o",
            client=client,
            progress=False,
            nsamples=SMALL["nsamples"],
            mono=True,
            resample=True,
            pad_short=True,
            precision="exact",
        )


def test_settings_for_a_cluster_audioprep_starts_are_refused_with_a_client(tiny_dataset, client, tmp_path):
    """Before: workers=4 with the caller's client was ignored without a word."""
    with pytest.raises(ParameterError) as e:
        preprocess(tiny_dataset, tmp_path / "o", client=client, progress=False, workers=4, **SMALL)
    assert str(e.value).startswith("workers=4 with client=: the run uses the workers of the client given")
    assert "\n" not in str(e.value) and not (tmp_path / "o").exists()


def test_a_choice_option_and_its_value_read_as_a_keyword_argument(tiny_dataset, client, tmp_path):
    """Before: "layout clips has no slots", the choice's value left bare in Python's words."""
    with pytest.raises(ParameterError) as e:
        preprocess(tiny_dataset, tmp_path / "o", client=client, progress=False, layout="clips", pad=True, **SMALL)
    text = str(e.value)
    assert text.endswith("drop pad=True, or use layout='grid'") and "layout='clips' has no slots" in text
    assert "--" not in text and not (tmp_path / "o").exists()


def test_a_closed_client_is_one_line_and_leaves_nothing(tiny_dataset, tmp_path):
    """Before: 'out of memory', and audio.zarr and audio.config.yaml left behind."""
    from distributed import Client, LocalCluster

    from pipeline import ClusterError

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as lc:
        closed = Client(lc)
        closed.close()
        with pytest.raises(ClusterError) as e:
            preprocess(tiny_dataset, tmp_path / "o", client=closed, progress=False, **SMALL)
    assert str(e.value).startswith("the client given is closed, not running: pass an open distributed.Client")
    assert not (tmp_path / "o").exists()


def test_python_users_read_keyword_values(tmp_path):
    """Before: 'give e.g. fmin 65.406 or fmin C2', where Python users write fmin=65.406."""
    with pytest.raises(ParameterError) as e:
        preprocess(tmp_path, tmp_path / "o", fmin="banana")
    assert str(e.value).endswith("give e.g. fmin=65.406 or fmin='C2'")
    from click.testing import CliRunner

    from pipeline.cli import main

    r = CliRunner().invoke(main, ["run", str(tmp_path), "-o", str(tmp_path / "o"), "--fmin", "banana"])
    assert r.exit_code == 1 and r.stderr.strip().endswith("give e.g. --fmin 65.406 or --fmin C2")
