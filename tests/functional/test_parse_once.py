"""A job parses each declaration of its config exactly once (engine/config/plan.py compiles it).

The demo runs in a subprocess whose parsers count their calls: every expression and
duration (``expr.parse``; a duration is parsed through it too), the quality rules
(``rules.parse_rules``), the feature spec (``FeatureSpec.from_config``) and the
business requirements (``kpis.parse``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import compose_config

COUNTING_RUN = """\
import collections, json, sys
from engine.config import expr, business as kpis, quality as rules, features as specs
counts = collections.defaultdict(collections.Counter)

def counted(label, func, key):
    def wrapper(*args, **kwargs):
        counts[label][key(*args, **kwargs)] += 1
        return func(*args, **kwargs)
    return wrapper

expr.parse = counted("expr.parse", expr.parse, lambda text: str(text))
rules.parse_rules = counted("rules.parse_rules", rules.parse_rules, lambda cfg: "quality")
kpis.parse = counted("kpis.parse", kpis.parse, lambda cfg: "business")
specs.FeatureSpec.from_config = classmethod(counted(
    "FeatureSpec.from_config", specs.FeatureSpec.from_config.__func__, lambda cls, *a, **k: "features"))

from engine.cli import dispatch

status = dispatch(["run", *sys.argv[1:]])
print("PARSED " + json.dumps({"status": status, **counts}))
"""


def declared_texts(cfg: dict[str, Any]) -> Counter[str]:
    """Every expression and duration the composed config declares, with how many
    declarations say it (two aggregations may both have ``window: 30d``)."""
    features, texts = cfg["features"], Counter[str]()
    texts.update([features["population"], features["target"]["expr"], *features["derived"].values()])
    for group in features["groups"].values():
        texts.update(agg["window"] for agg in group["aggregations"].values() if agg.get("window"))
    for attribute in features["attributes"].values():
        texts.update([attribute["ttl"]] if isinstance(attribute, dict) and attribute.get("ttl") else [])
    for rule in cfg["quality"]["rules"].values():
        texts.update(rule[key] for key in ("filter", "max_age") if rule.get(key))
    return texts


def test_a_demo_run_parses_each_declaration_exactly_once(project: Path) -> None:
    done = subprocess.run([sys.executable, "-c", COUNTING_RUN], cwd=project, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("PARSED ")]
    counts = json.loads(line.removeprefix("PARSED "))
    assert counts.pop("status") == 0, done.stdout[-2000:]
    assert counts.pop("rules.parse_rules") == {"quality": 1}
    assert counts.pop("FeatureSpec.from_config") == {"features": 1}
    assert counts.pop("kpis.parse") == {"business": 1}
    parsed = counts.pop("expr.parse")
    assert counts == {}
    declared = declared_texts(compose_config())
    assert set(parsed) == set(declared)
    assert {text: n for text, n in parsed.items() if n != declared[text]} == {}  # once per declaration
