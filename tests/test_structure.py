"""The shape of the code base: modules small enough to read, tests that stand on their own."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_of_the_package_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "pipeline").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


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
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("audioprep_dask-*.whl"))  # the distribution's name, normalized
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "pipeline").rglob("__init__.py")}
    assert packages and packages <= names, sorted(packages - names)
    assert {"pipeline/audioprep.yaml", "pipeline/cli.py", "pipeline/__main__.py"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_readme_examples_output_is_ignored_by_git_and_passing_tests_leave_no_files(request):
    """The README's examples write ~1 GB under mydata/: git ignores it in a checkout, and the README says so.
    pytest removes a passing test's tmp_path (and, after a green session, everything else it made)."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    if (repo / ".git").exists():
        p = subprocess.run(["git", "check-ignore", "-q", "mydata/out/audio.hdf5"], cwd=repo)
        assert p.returncode == 0, "mydata/ is not ignored by git"
    readme = " ".join((repo / "README.md").read_text().split())
    assert "These examples write about 1.1 GB under `mydata/` in the folder you run them from" in readme
    assert request.config.getini("tmp_path_retention_policy") == "failed"
