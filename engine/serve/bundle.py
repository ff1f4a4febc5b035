"""``mlops registry export MODEL DIR``: a self-contained bundle to serve a model elsewhere.

    DIR/
      model.skops, model.skops.sha256   the registered model file and its hash
      input_domain.json                 the training domain of its input
      model_card.json, model_card.md    metrics by stakeholder, threshold, input schema,
                                        lineage (run, config hash, data, features, aliases),
                                        the training environment; model_card.json is also
                                        what ``mlops serve --bundle DIR`` reads
      requirements.txt                  the training versions of the packages that decide
                                        results, the serve extra's, and the engine's wheel
      wheels/mlops_engine-*.whl         the engine, built from its source at export
      Dockerfile                        installs requirements.txt, runs mlops serve --bundle

``mlops serve --bundle DIR`` (or ``mlops serve DIR``) verifies the model and domain files
against the card's sha256s and the running environment against the card's before it
loads anything, exactly as from the registry; it does not follow an alias.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from engine import __version__
from engine.errors import EngineError, UsageError
from engine.files import atomic_path, write_json, write_text
from engine.serve.model import Served, _domain, _rules, _threshold
from engine.stages import domain as domains
from engine.store import environment
from engine.store.registry import ModelIntegrityError, Registry, read_model

CARD = "model_card.json"
MODEL = "model.skops"
#: Serving's own packages, pinned at the versions that export them.
SERVE_PACKAGES = ("fastapi", "uvicorn", "prometheus-client", "orjson", "starlette", "pydantic", "httptools",
                  "uvloop")
#: Environment markers of serving packages that do not install everywhere.
_MARKERS = {"uvloop": '; sys_platform != "win32"'}


def export(store: Registry, ref: str, target: Path) -> dict[str, Any]:
    """Write the bundle of ``ref`` into ``target`` (a new or empty folder); return its card.

    The model file is verified (sha256 against the registry and the run's records,
    trusted types) before anything is written.

    Raises:
        UsageError: ``target`` is a file or a folder that is not empty; the engine's
            source is not there to build its wheel from.
        ModelIntegrityError: The model or its domain does not match its records.
    """
    from engine.store.registry import load_model

    entry, version = store.resolve(ref)
    label = f"{entry['name']}/{version['version']}"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"usage error: {target} exists and is not an empty folder; export into a new one")
    load_model(label, store.root, allow_version_mismatch=True)  # every check of a load, before a byte is written
    payload = store.model_path(version).read_bytes()
    domain_bytes = store.input_domain(version)
    if domain_bytes is None:
        raise UsageError(f"usage error: {label} was registered without its input domain (input_domain.json); "
                         "re-run its run and register it again to export it")
    source = _engine_source()
    card = _card(entry, version, domains.read(domain_bytes, "input_domain.json"))
    target.mkdir(parents=True, exist_ok=True)
    with atomic_path(target / MODEL) as tmp:
        tmp.write_bytes(payload)
    write_text(target / f"{MODEL}.sha256", f"{version['model_sha256']}  {MODEL}\n")
    with atomic_path(target / domains.DOMAIN_FILE) as tmp:
        tmp.write_bytes(domain_bytes)
    wheel = _build_wheel(source, target / "wheels")
    write_text(target / "requirements.txt", _requirements(card["environment"], wheel))
    write_text(target / "Dockerfile", _dockerfile(card["environment"].get("python")))
    write_json(target / CARD, card)
    write_text(target / "model_card.md", _markdown(card))
    return card


def load_bundle(folder: Path, allow_version_mismatch: bool = False) -> Served:
    """The model of a bundle, verified against its card.

    Raises:
        UsageError: Not a bundle (no readable model_card.json).
        ModelIntegrityError: The model or domain file does not match the card.
        EnvironmentMismatch: Trained with another major version (see :mod:`engine.store.environment`).
    """
    try:
        card = json.loads((folder / CARD).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"usage error at --bundle: {folder} has no readable {CARD}") from exc
    if not isinstance(card, dict) or not isinstance(card.get("model"), dict):
        raise UsageError(f"usage error at --bundle: {folder / CARD} is not a model card")
    model = card["model"]
    label = f"{model.get('name')}/{model.get('version')} (bundle {folder})"
    environment.compare(card.get("environment"), label, allow_version_mismatch)
    payload = (folder / MODEL).read_bytes() if (folder / MODEL).is_file() else b""
    if hashlib.sha256(payload).hexdigest() != model.get("sha256"):
        raise ModelIntegrityError(f"registry error: refusing to load {folder / MODEL}: it does not match the sha256 in "
                                  f"{CARD} (the file was changed or replaced)")
    domain_path = folder / domains.DOMAIN_FILE
    domain_bytes = domain_path.read_bytes() if domain_path.is_file() else b""
    if hashlib.sha256(domain_bytes).hexdigest() != model.get("input_domain_sha256"):
        raise ModelIntegrityError(f"registry error: refusing {domain_path}: it does not match the sha256 in {CARD}")
    estimator = read_model(payload, folder / MODEL)
    lineage = card.get("lineage") or {}
    domain = _domain(domain_bytes, domain_path)
    return Served(model=estimator, domain=domain, rules=_rules(domain, domain_path), name=str(model.get("name")),
                  version=model.get("version"), alias=None, run_id=str(lineage.get("run_id")),
                  sha256=str(model["sha256"]), threshold=_threshold(estimator, model.get("threshold")),
                  config_sha256=lineage.get("config_sha256"),
                  data_fingerprints=dict(lineage.get("data_fingerprints") or {}),
                  feature_tables=list(lineage.get("feature_tables") or []),
                  environment=dict(card.get("environment") or {}), as_of=lineage.get("as_of"))


def is_bundle(path: str) -> bool:
    return (Path(path) / CARD).is_file()


def _card(entry: dict[str, Any], version: dict[str, Any], domain: dict[str, Any]) -> dict[str, Any]:
    stakeholders = None
    try:
        stakeholders = json.loads((Path(str(version["run_dir"])) / "metrics.json").read_text()).get("stakeholders")
    except (OSError, ValueError, AttributeError):
        pass  # the run's folder is gone: the registry's flat metrics remain
    number = version["version"]
    return {
        "card": 1,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine": __version__,
        "model": {"name": entry["name"], "version": number,
                  "aliases": sorted(a for a, v in entry["aliases"].items() if v == number),
                  "estimator": version.get("model_target"), "sha256": version["model_sha256"],
                  "input_domain_sha256": version.get("input_domain_sha256"), "threshold": version.get("threshold")},
        "metrics": {"by_stakeholder": stakeholders, "all": version.get("metrics") or {}},
        "input_schema": {"key": domain.get("key"), "columns": domain["columns"], "training_rows": domain.get("rows")},
        "lineage": {"run_id": version["run_id"], "config_sha256": version.get("config_sha256"),
                    "registered_at": version.get("registered_at"), "as_of": version.get("as_of"),
                    "data_fingerprints": version.get("data_fingerprints") or {},
                    "feature_tables": version.get("feature_tables") or [],
                    "alias_history": [m for m in entry["alias_history"] if m.get("version") == number]},
        "environment": version.get("environment") or {},
    }


def _engine_source() -> Path:
    """The folder the engine is installed from (an editable install's checkout)."""
    import engine

    root = Path(engine.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise UsageError("usage error: registry export builds the engine's wheel from its source, and this engine is "
                         f"installed without it ({root}); install it from its repository (pip install -e .)")
    return root


def _build_wheel(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-wheel-") as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp,
                               str(source)], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mlops_engine-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            problem = [line for line in done.stderr.splitlines() if line.strip() and "WARNING: Location" not in line]
            raise EngineError(f"export error: building the engine's wheel from {source} failed: "
                              f"{problem[-1] if problem else done.returncode}")
        target = folder / wheels[0].name
        shutil.copyfile(wheels[0], target)
    return target


def _requirements(env: dict[str, Any], wheel: Path) -> str:
    lines = ["# The training environment of the model (its run's provenance), and serving's packages.",
             "# pip install -r requirements.txt, from this folder."]
    packages = dict(env.get("packages") or {})
    packages.pop("mlops-engine", None)
    for name in sorted(packages):
        lines.append(f"{name}=={packages[name]}")
    for name in SERVE_PACKAGES:
        try:
            pinned = f"{name}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            pinned = name
        lines.append(pinned + _MARKERS.get(name, ""))
    lines.append(f"./wheels/{wheel.name}")
    return "\n".join(lines) + "\n"


def _dockerfile(python: str | None) -> str:
    minor = ".".join((python or f"{sys.version_info.major}.{sys.version_info.minor}").split(".")[:2])
    return f"""\
# The model behind mlops serve, in the Python and package versions it was trained with.
#   docker build -t churn-model . && docker run -p 8000:8000 churn-model
FROM python:{minor}-slim
WORKDIR /bundle
COPY . /bundle
RUN pip install --no-cache-dir -r requirements.txt
EXPOSE 8000
# 0.0.0.0 inside the container: the port is published by docker run -p
CMD ["mlops", "serve", "--bundle", "/bundle", "--host", "0.0.0.0", "--port", "8000", "--log-dir", "/bundle/predictions"]
"""


def _markdown(card: dict[str, Any]) -> str:
    model, lineage = card["model"], card["lineage"]
    out = [f"# Model card: {model['name']}/{model['version']}", "",
           f"- estimator: `{model['estimator']}`", f"- sha256: `{model['sha256']}`",
           f"- decision threshold: {model['threshold']}", f"- aliases: {', '.join(model['aliases']) or '-'}",
           f"- run: `{lineage['run_id']}`, registered {lineage['registered_at']}, features as of {lineage['as_of']}",
           f"- config sha256: `{lineage['config_sha256']}`", "", "## Metrics by stakeholder", ""]
    stakeholders = card["metrics"]["by_stakeholder"]
    if isinstance(stakeholders, dict):
        for who, metrics in stakeholders.items():
            values = ", ".join(f"{k}={_fmt(v)}" for k, v in (metrics or {}).items()) if isinstance(metrics, dict) \
                else str(metrics)
            out.append(f"- **{who.replace('_', ' ')}**: {values}")
    else:
        out.append(", ".join(f"{k}={_fmt(v)}" for k, v in card["metrics"]["all"].items()))
    out += ["", "## Input schema", "", "| column | type | training domain | missing share |", "|---|---|---|---|"]
    for name, spec in card["input_schema"]["columns"].items():
        seen = (", ".join(spec["categories"]) if spec.get("categories") else f"{spec.get('distinct')} distinct") \
            if spec["type"] in ("string", "boolean") else f"{spec.get('min')} to {spec.get('max')}"
        out.append(f"| {name} | {spec['type']} | {seen} | {spec.get('missing_share')} |")
    out += ["", "## Lineage", ""]
    out += [f"- data `{name}`: `{fp}`" for name, fp in lineage["data_fingerprints"].items()]
    out += [f"- feature table {t.get('group') or t.get('table')}: `{t.get('key')}`" for t in lineage["feature_tables"]]
    env = card["environment"]
    out += ["", "## Training environment", "", f"- Python {env.get('python')}"]
    out += [f"- {name} {version}" for name, version in sorted((env.get("packages") or {}).items())]
    return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
