"""``mlops registry``: numbered model versions with aliases."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.cli.common import command_parser, tracking_store
from engine.errors import UsageError

REGISTRY_USAGE = """\
usage: mlops registry register RUN --name NAME
       mlops registry list
       mlops registry show NAME[@ALIAS|/VERSION]
       mlops registry promote NAME/VERSION --alias ALIAS
       mlops registry history NAME
       mlops registry export NAME[@ALIAS|/VERSION] DIR   (a bundle to serve elsewhere: model, card,
                                  requirements.txt pinned to the training versions, Dockerfile)
       (every form takes --registry PATH; default outputs/registry or $MLOPS_REGISTRY)
"""


def registry_command(args: list[str]) -> int:
    """``mlops registry ...``: numbered model versions with aliases."""
    from engine.store import registry, runs

    if not args:
        raise UsageError("usage error: registry needs an action; expected one of: register, list, show, promote, "
                         "history, export (see mlops registry --help)")
    if args[0] in ("-h", "--help"):
        print(REGISTRY_USAGE, end="")
        return 0
    parser = command_parser("mlops registry", REGISTRY_USAGE)
    parser.add_argument("action", choices=["register", "list", "show", "promote", "history", "export"])
    parser.add_argument("ref", nargs="?")
    parser.add_argument("target", nargs="?")
    parser.add_argument("--name")
    parser.add_argument("--alias")
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(registry.DEFAULT_PATH)))
    options = parser.parse_args(args)
    # the entries live in the store (--tracking-uri, else $MLOPS_TRACKING_URI, else outputs/mlops.db)
    store = registry.Registry(Path(options.registry), options.tracking_uri)
    needs_ref = {"register": "RUN", "show": "NAME[@ALIAS|/VERSION]", "promote": "NAME/VERSION", "history": "NAME",
                 "export": "NAME[@ALIAS|/VERSION] DIR"}
    if options.target and options.action != "export":
        raise UsageError(f"usage error: registry {options.action} takes one argument, got {options.target!r} too")
    if options.action in needs_ref and not options.ref:
        raise UsageError(f"usage error: registry {options.action} needs {needs_ref[options.action]}")
    if options.action == "register":
        if not options.name:
            raise UsageError("usage error: registry register needs --name NAME")
        path = Path(options.ref)
        if not path.is_dir():
            run_store = tracking_store(options.tracking_uri)
            path = Path(runs.resolve(run_store, options.ref, runs.all_runs(run_store),
                                     succeeded=True)["run_dir"])
        version = store.register(options.name, path)
        print(f"registered {options.name}/{version['version']} from run {version['run_id'][:8]} "
              f"(model sha256 {version['model_sha256'][:12]})")
        same = [v["version"] for v in store.read(options.name)["versions"]
                if v["model_sha256"] == version["model_sha256"] and v["version"] != version["version"]]
        if same:
            print(f"mlops: note: {options.name}/{version['version']} is the same model file as version(s) "
                  f"{', '.join(map(str, same))} (a reused run, or the same run registered again)", file=sys.stderr)
    elif options.action == "list":
        names = store.names()
        for name in names:
            entry = store.read(name)
            aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(entry["aliases"].items()))
            print(f"{name:<20} {len(entry['versions'])} version(s)  {aliases}")
        print(f"{len(names)} model(s) in {store.entries.shown if store.entries is not None else store.root}")
    elif options.action == "show":
        entry, version = store.resolve(options.ref)
        holders = [a for a, v in entry["aliases"].items() if v == version["version"]]
        print(f"{entry['name']}/{version['version']}" + (f"  ({', '.join(holders)})" if holders else ""))
        for key in ("run_id", "run_dir", "model", "model_sha256", "model_target", "threshold", "config_sha256",
                    "registered_at"):
            print(f"  {key}: {version.get(key)}")
        for name, value in sorted((version.get("metrics") or {}).items()):
            print(f"  metrics.{name}: {value}")
    elif options.action == "export":
        if not options.target:
            raise UsageError("usage error: registry export needs NAME[@ALIAS|/VERSION] DIR")
        from engine.serve import bundle

        card = bundle.export(store, options.ref, Path(options.target))
        model = card["model"]
        print(f"exported {model['name']}/{model['version']} (sha256 {model['sha256'][:12]}) to {options.target}: "
              f"model.skops, input_domain.json, model_card.json/.md, requirements.txt, wheels/, Dockerfile")
        print(f"  serve it: cd {options.target} && pip install -r requirements.txt && mlops serve --bundle .")
    elif options.action == "promote":
        if not options.alias:
            raise UsageError("usage error: registry promote needs --alias ALIAS")
        name, _, number = options.ref.partition("/")
        if not number.isdigit():
            raise UsageError(f"usage error: promote takes NAME/VERSION, got {options.ref!r}")
        move = store.promote(name, int(number), options.alias)
        before = f" (was v{move['previous']})" if move["previous"] else ""
        print(f"{name}@{options.alias} -> v{move['version']}{before}")
    else:
        entry = store.read(options.ref)
        for move in entry["alias_history"]:
            before = f"v{move['previous']}" if move["previous"] else "-"
            print(f"{move['at']}  {options.ref}@{move['alias']}: {before} -> v{move['version']}")
        print(f"{len(entry['alias_history'])} alias change(s)")
    return 0
