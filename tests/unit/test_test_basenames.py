"""pytest collects the test folders without packages (rootdir-relative basenames): two test
modules with one file name stop the whole run at collection ("import file mismatch"). This
caught it twice (test_types, test_cost); it now fails here, by name, before CI does."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_two_test_modules_share_a_file_name() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for folder in (ROOT / "tests", ROOT / "server" / "tests"):
        for path in folder.rglob("test_*.py"):
            if not (path.parent / "__init__.py").exists():
                seen[path.name].append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
