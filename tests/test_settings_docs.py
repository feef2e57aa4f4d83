"""The README's settings table names every setting the code reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_the_readme_table() -> None:
    text = README.read_text()
    table = text[text.index("## Settings") : text.index("\n## ", text.index("## Settings") + 1)]
    documented = set(re.findall(r"^\| `(POLLY_[A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    read = {f"POLLY_{name.upper()}" for name in Settings.model_fields}
    assert read - documented == set(), "settings missing from the README's table"
    assert documented - read == set(), "the README's table names settings the code does not read"
