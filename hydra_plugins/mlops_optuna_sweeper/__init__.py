"""mlops_optuna: a Hydra sweeper on a current Optuna, with resumable SQLite studies.

Select it with ``hydra/sweeper=mlops_optuna`` (see ``conf/experiment/tune_optuna.yaml``).
Hydra finds it in the ``hydra_plugins`` namespace package; Optuna is imported only
when a sweep starts, so other commands do not pay for it (``pip install -e '.[tune]'``).
"""
