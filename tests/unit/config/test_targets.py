from __future__ import annotations

import pytest

from engine.config import targets


def test_allowlisted_classes_import() -> None:
    cls = targets.import_target("sklearn.ensemble.RandomForestClassifier")
    assert cls.__name__ == "RandomForestClassifier"


@pytest.mark.parametrize("dotted", ["os.system", "subprocess.Popen", "builtins.eval", "sklearn.ensemble"])
def test_anything_else_is_refused(dotted: str) -> None:
    with pytest.raises(PermissionError):
        targets.import_target(dotted)
