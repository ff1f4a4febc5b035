"""mlops_grid: Hydra's basic grid sweeper, plus ``max_failures`` (stop launching early).

The default sweeper of ``conf/config.yaml``; select it elsewhere with
``hydra/sweeper=mlops_grid``.
"""
