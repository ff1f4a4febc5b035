"""The stages of a run, one module per config group: data, quality, features, split, model, business.

Each stage is a plain function of its config group and the previous stage's output;
the orchestration in :mod:`engine.run.job` times them and records their artifacts.
"""
