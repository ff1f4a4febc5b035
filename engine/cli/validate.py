"""``mlops validate`` and ``mlops diff``: what a pull request's CI job runs.

``validate`` proves a change is not worse than the model in production (the champion
gate of ``conf/promotion/``); ``diff`` shows the composed config a reviewer reads next
to the metrics.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from engine.cli.app import hydra_app, lazy_task
from engine.cli.check import check_command
from engine.cli.common import command_parser, project_setting, tracking_store
from engine.errors import EXIT_BAD_INPUT, PromotionGateError, UsageError

VALIDATE_USAGE = """\
usage: mlops validate [OVERRIDE ...] --against NAME@ALIAS [--candidate RUN] [--promote]
                      [--summary FILE] [--registry PATH] [--tracking-uri URI]

  OVERRIDE     Hydra overrides of the candidate's config (as mlops run takes them)
  --against    the model in production, e.g. churn@champion
  --candidate  a finished training run (latest, id, prefix or run directory) instead of
               running the composed config (which first runs mlops check --all)
  --promote    on a pass, register the candidate and move the alias to it
  --summary    also append validation.md to FILE, pass or fail (in GitHub Actions:
               --summary "$GITHUB_STEP_SUMMARY", the job's summary page)

Scores the candidate and the champion on the same evaluation rows, computes every
metric for both with paired bootstrap intervals, applies conf/promotion/ and writes
validation.json and validation.md (for the pull request) into the candidate's run
directory. Exit 0: passed (also when there is no champion yet); 4: a rule failed, one
line each on stderr; 2: bad input.
"""

DIFF_USAGE = """\
usage: mlops diff REF [REF2]

  REF   a branch, tag or commit: the project's conf/ at REF (read with git, nothing
        checked out) against the working tree, or against REF2

Prints every key of the composed config that differs, the option chosen in each config
group included (defaults.<group>), as `key: before -> after`.
"""


def validate_command(args: list[str]) -> int:
    """``mlops validate ...``: the champion gate."""
    from engine.config import plan as plans
    from engine.config.promotion import PromotionSpec
    from engine.run import validate
    from engine.store import registry, runs

    parser = command_parser("mlops validate", VALIDATE_USAGE)
    parser.add_argument("--against", required=True)
    parser.add_argument("--candidate")
    parser.add_argument("--promote", action="store_true")
    parser.add_argument("--summary")
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(registry.DEFAULT_PATH)))
    options, overrides = parser.parse_known_args(args)
    flags = [a for a in overrides if a.startswith("-")]
    if flags:
        parser.error(f"unrecognized arguments: {' '.join(flags)}")
    name, _, alias = options.against.partition("@")
    if not alias:
        parser.error(f"--against takes NAME@ALIAS, got {options.against!r}")
    registry.check_name(name)
    root = Path.cwd()
    if options.candidate:
        if overrides:
            parser.error("overrides apply to a run made here; with --candidate the run exists already")
        candidate = Path(options.candidate)
        if not candidate.is_dir():
            store = tracking_store(options.tracking_uri)
            candidate = Path(runs.resolve(store, options.candidate, runs.all_runs(store), succeeded=True)["run_dir"])
    else:
        # the composed config first: a bad override is one line, not one per option
        if check_command(overrides) != 0 or check_command(["--all", *overrides]) != 0:
            return EXIT_BAD_INPUT
        candidate = _run_candidate(overrides)
    plan = plans.compile(_resolved(candidate))
    spec = plan.promotion
    if not spec.declared:  # a run recorded before conf/promotion/ existed: the project's policy
        spec = PromotionSpec.from_config(_as_dict(project_setting("promotion", None)), plan.settings.seed)
    verdict = validate.gate(candidate, root, options.against, Path(options.registry), spec, plan.business.economics,
                            options.tracking_uri)
    _print(verdict, candidate)
    if options.summary:
        with open(options.summary, "a", encoding="utf-8") as summary:
            summary.write((candidate / validate.VALIDATION_MD).read_text(encoding="utf-8"))
    if not verdict["passed"]:
        for line in verdict["failures"][:-1]:
            print(f"mlops: validation failed: {line}", file=sys.stderr)
        raise PromotionGateError(f"validation failed: {verdict['failures'][-1]}")
    if options.promote:
        validate.promote(candidate, options.against, Path(options.registry), print, options.tracking_uri)
    return 0


def _run_candidate(overrides: list[str]) -> Path:
    """Run the composed config as ``mlops run`` would, into a run directory known here."""
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    label = next((o.split("=", 1)[1] for o in overrides if o.startswith("name=")), None)
    label = label or str(project_setting("name", "run"))
    run_dir = Path("outputs") / "runs" / f"{stamp}-{label}"
    hydra_app(lazy_task("task"), [*overrides, f"hydra.run.dir={run_dir}"], "mlops validate")
    return Path.cwd() / run_dir


def _resolved(run_dir: Path) -> dict:
    import yaml

    try:
        loaded = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    except OSError as exc:
        raise UsageError(f"usage error: {run_dir} has no config.resolved.yaml; expected a training run") from exc
    return loaded


def _as_dict(value: object) -> dict | None:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)  # type: ignore[return-value]
    return value if isinstance(value, dict) else None


def _print(verdict: dict, candidate: Path) -> None:
    from engine.run.validate import _num

    champion = verdict.get("champion")
    if champion is None:
        print(f"validate: {verdict['note']}")
    else:
        print(f"validate: run {verdict['candidate']['run_id'][:8]} against {verdict['against']} = "
              f"{champion['name']}/{champion['version']} on {verdict['evaluation']}")
        ruled = {r["metric"]: r for r in verdict["rules"]}
        print(f"  {'metric':<27}{'champion':>12}{'candidate':>12}{'difference':>12}  interval")
        for name, m in verdict["metrics"].items():
            interval = f"[{_num(m['interval'][0])}, {_num(m['interval'][1])}]" if m.get("interval") else ""
            rule = ruled.get(name)
            mark = "" if rule is None else ("  pass: " if rule["passed"] else "  FAIL: ") + rule["rule"]
            print(f"  {name:<27}{_num(m['champion']):>12}{_num(m['candidate']):>12}{_num(m['improvement']):>12}  "
                  f"{interval}{mark}")
    if "latency" in verdict:
        lat = verdict["latency"]
        print(f"  latency: p99 single-row {lat['p99_ms']} ms (budget {lat['budget_ms']} ms)")
    print(f"validate: {'passed' if verdict['passed'] else 'FAILED'}; {candidate / 'validation.md'}")


def diff_command(args: list[str]) -> int:
    """``mlops diff REF [REF2]``: the composed config at git refs, changed keys only."""
    from engine.config import diff

    parser = command_parser("mlops diff", DIFF_USAGE, tracking_uri=False)
    parser.add_argument("ref")
    parser.add_argument("ref2", nargs="?")
    options = parser.parse_args(args)
    project = Path.cwd()
    if not (project / "conf" / "config.yaml").is_file() and options.ref2 is None:
        raise UsageError(f"usage error: no conf/config.yaml in {project}; run mlops diff from a project folder")
    with diff.conf_at(options.ref, project) as conf:
        before = diff.composed(conf)
    if options.ref2:
        with diff.conf_at(options.ref2, project) as conf:
            after = diff.composed(conf)
    else:
        after = diff.composed(project / "conf")
    changed = diff.changes(before, after)
    for key, old, new in changed:
        print(f"{key}: {old!r} -> {new!r}" if old != diff.ABSENT and new != diff.ABSENT
              else f"{key}: {old} -> {new!r}" if old == diff.ABSENT else f"{key}: {old!r} -> {new}")
    against = options.ref2 or "the working tree"
    print(f"{len(changed)} key(s) differ between {options.ref} and {against}")
    return 0
