"""The shape of the code base: modules small enough to read, tests that stand on their own."""

import ast
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _statements(path: Path) -> int:
    """Logical lines (tokenize's NEWLINE tokens): one a statement, however a formatter wraps it; comments,
    blank lines and the lines a docstring or a long call spreads over do not count."""
    with path.open("rb") as f:
        return sum(t.type == tokenize.NEWLINE for t in tokenize.tokenize(f.readline))


def test_no_module_of_the_package_is_over_300_statements():
    """The size of a module as a reader meets it: 300 logical lines (about 400 lines as the code was written
    before ruff format, which spreads a long call over many lines but keeps its statements)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "pipeline").rglob("*.py") if (n := _statements(p)) > 300}
    assert long == {}


def test_statements_are_counted_whatever_the_wrapping(tmp_path):
    one, wrapped = tmp_path / "one.py", tmp_path / "wrapped.py"
    one.write_text('"""Doc."""\n\n# why\nx = f(1, 2, 3)\nif x:\n    y = 2\n')
    wrapped.write_text('"""Doc\n\non lines.\n"""\n\nx = f(\n    1,\n    2,\n    3,\n)\nif x:\n    y = 2\n')
    assert _statements(one) == _statements(wrapped) == 4


def test_params_and_kernels_import_with_numpy_alone():
    """pipeline/__init__ imported dask (through the loaders and preprocess) before any submodule could load; the
    public names are now imported when first used. A child Python in which dask, zarr, h5py, librosa, scipy, ...
    cannot be imported loads pipeline.params and pipeline.kernels, frames a clip and checks the parameters."""
    code = textwrap.dedent("""
        import sys
        BLOCKED = {"dask", "distributed", "dask_jobqueue", "zarr", "h5py", "librosa", "scipy", "numba",
                   "soundfile", "xarray", "click", "tqdm", "yaml", "psutil", "bokeh"}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked")

        sys.meta_path.insert(0, Block())
        import numpy as np
        import pipeline.kernels
        import pipeline.params
        import pipeline

        p = pipeline.params.Params()
        y = np.arange(p.nsamples, dtype=np.float32)
        X = pipeline.kernels.frame_streams(y, na=p.na, nframes=p.nframes)
        assert X.shape == (644, 2, 1024) and X[1, 1, 0] == 1024 + 512
        assert pipeline.Params is pipeline.params.Params and issubclass(pipeline.StoreError, pipeline.PipelineError)
        try:
            pipeline.preprocess
        except ImportError as e:
            assert "blocked" in str(e), e
        else:
            raise AssertionError("preprocess imported without dask")
        print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip() == "[]"


def test_the_public_names_resolve_when_used():
    import pipeline
    from pipeline.api import preprocess
    from pipeline.output import FrameBlocks, to_matrix

    assert pipeline.preprocess is preprocess and pipeline.FrameBlocks is FrameBlocks
    assert {"preprocess", "open_dataset", "to_matrix", "Params"} <= set(dir(pipeline))
    assert set(pipeline.__all__) <= set(dir(pipeline))
    assert to_matrix.__module__.startswith("pipeline.output")
    try:
        pipeline.not_a_name  # noqa: B018
    except AttributeError as e:
        assert "not_a_name" in str(e)
    else:
        raise AssertionError("an unknown name resolved")


def test_no_test_module_imports_another():
    """Shared test code lives in tests/support/; a test module importing test_x (or conftest) ties them."""
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [(path.name, n) for n in names if n.split(".")[0].startswith("test_") or n == "conftest"]
    assert found == []


def test_the_wheel_holds_every_package_and_the_packaged_yaml(tmp_path):
    """Before: the wheel listed pipeline and pipeline.output only, so 'pip install .' gave a tool that could not
    start (No module named 'pipeline.inputs')."""
    import shutil
    import zipfile

    # Built from a copy without build/: setuptools leaves files of earlier builds in build/lib, and the wheel
    # would hold a file the package data no longer names.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", "data", "mydata", "_build", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("audioprep_dask-*.whl"))  # the distribution's name, normalized
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "pipeline").rglob("__init__.py")}
    assert packages and packages <= names, sorted(packages - names)
    assert {"pipeline/audioprep.yaml", "pipeline/cli.py", "pipeline/__main__.py", "pipeline/py.typed"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_readme_examples_output_is_ignored_by_git_and_passing_tests_leave_no_files(request):
    """The docs' worked example writes ~1 GB under mydata/: git ignores it in a checkout, and the page says so.
    pytest removes a passing test's tmp_path (and, after a green session, everything else it made)."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    if (repo / ".git").exists():
        p = subprocess.run(["git", "check-ignore", "-q", "mydata/out/audio.hdf5"], cwd=repo)
        assert p.returncode == 0, "mydata/ is not ignored by git"
    page = " ".join((repo / "docs" / "getting-started.md").read_text().split())
    assert "These examples write about 1.1 GB under `mydata/` in the folder you run them from" in page
    assert request.config.getini("tmp_path_retention_policy") == "failed"
