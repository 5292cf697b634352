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
