"""``mlops init``: a complete, commented ``conf/`` tree for a user's own table.

    read (csv, parquet, sql) -> profile (one pass) -> write conf/

:mod:`engine.scaffold.profile` reads the data and profiles each column once;
:mod:`engine.scaffold.write` turns a profile into the YAML files of a project;
:mod:`engine.cli.init` is the command line.
"""
