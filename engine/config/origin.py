"""Where the keys of a composed config came from: a group's file or a command-line override.

Light on purpose (no pandas, no scikit-learn): the launching process of a sweep names
sources in its errors too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hydra.core.override_parser.overrides_parser import OverridesParser

GROUPS = ("data", "quality", "features", "model", "split", "business", "promotion", "monitor")


@dataclass(frozen=True)
class ConfigOrigin:
    """Where config keys came from, to say so in errors.

    Args:
        choices: The chosen option of each group (Hydra's ``runtime.choices``).
        overrides: The command-line overrides, as typed.
        conf_dir: How to name the config folder in messages (``conf``).
    """

    choices: Mapping[str, str | None] = field(default_factory=dict)
    overrides: Sequence[str] = ()
    conf_dir: str = "conf"

    def source_of(self, path: str) -> str | None:
        """The override or file a dotted key path most likely came from."""
        matches = [
            (len(key), override)
            for override in self.overrides
            if (key := _override_key(override)) and (path == key or path.startswith(key + "."))
            and key not in self.choices  # a group choice (model=x) points at its file, below
        ]
        if matches:
            return f"override {max(matches)[1]}"
        group = path.split(".", 1)[0]
        choice = self.choices.get(group)
        if group in GROUPS and choice:
            return f"{self.conf_dir}/{group}/{choice}.yaml"
        if choice is None and group not in GROUPS and self.choices:
            experiment = self.choices.get("experiment")
            if experiment and group in ("hypothesis", "select", "register"):
                return f"{self.conf_dir}/experiment/{experiment}.yaml"
            return f"{self.conf_dir}/config.yaml"
        return None


def _override_key(override: str) -> str | None:
    try:
        parsed = OverridesParser.create().parse_override(override)
    except Exception:  # an unparseable override cannot be a key's source
        return None
    return parsed.get_key_element().lstrip("~+")
