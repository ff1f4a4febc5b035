"""``mlops serve`` and ``mlops predict``: a registered model behind an HTTP service, or over a file.

The layer between the command line and the runs: it reads the registry and the feature
store (``engine.store``) and the training domain (``engine.stages.domain``), and it is
used only by ``engine.cli.serve``. FastAPI, uvicorn and prometheus-client are imported by
:mod:`engine.serve.app` alone, so ``mlops predict`` runs without the ``serve`` extra.
"""
