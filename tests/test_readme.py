"""The README's and the docs' commands and code, run as written, in one fresh folder, in the order a reader meets them.

The blocks marked ``<!-- readme-test -->`` (README) or ``<!-- docs-test -->`` (docs/) run as they stand, with one
exception: the quickstart's install commands (``python3 -m venv``, ``. .venv/bin/activate``, ``pip install``) are
left out, because the environment running this suite was made by exactly that install (``pip install -e
".[test]"``); the rest of their lines (``audioprep run``) runs. The README comes first, then the docs' pages in the
order of their table of contents (docs/index.md).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(
    r"<!-- (?:readme|docs)-test(?:: (?P<needs>[^>]*?))? -->\n```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)
INSTALL = ("python3 -m venv", ". .venv/bin/activate", "pip install")


def _pages() -> list:
    """README.md, then each page of the docs' table of contents, in its order."""
    index = (ROOT / "docs" / "index.md").read_text()
    toc = index.split("```{toctree}", 1)[1].split("```", 1)[0]
    names = [ln.strip() for ln in toc.splitlines() if ln.strip() and not ln.strip().startswith(":")]
    return [README] + [ROOT / "docs" / f"{name}.md" for name in names]


def _blocks() -> list:
    return [(m["lang"], m["code"], m["needs"]) for page in _pages() for m in BLOCK.finditer(page.read_text())]


def _without_install(code: str) -> str:
    lines = []
    for line in code.splitlines():
        parts = [p.strip() for p in line.split("&&")]
        kept = [p for p in parts if not p.startswith(INSTALL)]
        if kept:
            lines.append(" && ".join(kept))
    return "\n".join(lines)


def test_the_readme_and_the_docs_mark_their_runnable_blocks():
    pages = _pages()
    assert all(p.exists() for p in pages) and len(pages) >= 10, pages
    blocks = _blocks()
    langs = [lang for lang, _, _ in blocks]
    assert langs.count("bash") >= 3 and langs.count("python") >= 3
    quickstart = blocks[0][1]
    assert "python3 -m venv .venv" in quickstart and _without_install(quickstart) == "audioprep run"
    assert "from pipeline import open_dataset, to_matrix" in "".join(code for _, code, _ in blocks)


@pytest.mark.slow
def test_readme_and_docs_commands_and_snippets_run_as_written(tmp_path):
    env = {
        **os.environ,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "DASK_TEMPORARY_DIRECTORY": str(tmp_path),
    }
    checks = {  # what the prose around a snippet promises, checked in the snippet's own namespace
        "to_matrix(": "\nassert X.shape == (10 * 8 * 644 * 2, 96) and ds.Xn.dims == "
        "('genre', 'clip', 'frame', 'overlap', 'bin')"
        "\nassert [round(float(v), 2) for v in ds.frequency[:3]] == [65.41, 67.32, 69.3]"
        "\nassert ds.source.values[0, 0] == 'blues/blues.00000.au'",
        "h5py.File(": "\nassert labels[:2] == ['blues', 'classical'] and Xn.shape == (8, 644, 2, 96)"
        "\nassert source[9, 9] == 'rock/rock.00009.au'",
        "frame_streams(": "\nassert p.nframes == 644 and round(p.fmin, 3) == 65.406 and Xa.shape == (644, 2, 1024)"
        "\nassert (Xa[1, 1] == y[1024 + 512:2 * 1024 + 512]).all() and not silent.any()",
    }
    ran = 0
    for lang, code, needs in _blocks():
        if needs == "needs torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                continue  # an optional extra this environment does not have
        if lang == "bash":
            script = "set -euo pipefail\n" + _without_install(code)
            p = subprocess.run(
                ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
            )
        else:
            extra = "".join(v for k, v in checks.items() if k in code)
            p = subprocess.run(
                [sys.executable, "-c", code + extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
            )
        assert p.returncode == 0, f"block failed:\n{code}\n--- stderr:\n{p.stderr[-3000:]}"
        ran += 1
    assert ran >= 6
    with h5py.File(tmp_path / "data" / "audio.hdf5") as f:  # the quickstart's promise
        assert f["Xa"].shape == (10, 10, 644, 2, 1024) and f["Xs"].shape == (10, 10, 644, 2, 96)
    for out in ("out", "out2"):
        with h5py.File(tmp_path / "mydata" / out / "audio.hdf5") as f:
            assert f["Xs"].shape == (10, 5, 644, 2, 96) and f["valid"][...].all()
    assert (tmp_path / "clip.png").stat().st_size > 10000 and (tmp_path / "summary.png").stat().st_size > 10000
