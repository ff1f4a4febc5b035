"""The rule declarations: the README's rule reference is generated from them."""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path

from engine.config import quality

README = Path(__file__).resolve().parents[3] / "README.md"
BLOCK = re.compile(r"(<!-- rule reference:[^\n]*-->\n)(.*?)(<!-- end of rule reference -->)", re.S)


def test_the_readme_rule_reference_is_current() -> None:
    """Set MLOPS_UPDATE_DOCS=1 to rewrite the README's table from the declarations."""
    text = README.read_text()
    match = BLOCK.search(text)
    assert match, "the README lost its rule reference markers"
    if os.environ.get("MLOPS_UPDATE_DOCS") == "1":
        README.write_text(BLOCK.sub(lambda m: m.group(1) + quality.reference() + m.group(3), text))
        return
    assert match.group(2) == quality.reference(), "run MLOPS_UPDATE_DOCS=1 pytest -n 0 " + __file__


def test_every_rule_type_and_key_is_in_the_reference() -> None:
    table = quality.reference()
    for check, cls in quality.RULE_TYPES.items():
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{check}` |")]
        for key in (f.name for f in fields(cls)):
            if key not in ("name", "dimension", "severity", "mostly", "filter", "description"):
                assert f"`{key}`" in row, (check, key)
    assert "**`source`**" in table and "`mostly`=1.0" in table


def test_every_rule_type_names_a_dimension() -> None:
    assert {cls.family for cls in quality.RULE_TYPES.values()} == set(quality.DIMENSIONS)
