"""The repository's SQL, every statement built with SQLAlchemy Core from
:mod:`taskaction_operator.repo.schema`.

* :mod:`.keys`: the key conditions (primary key, a run's root) and their bind parameters, once each.
* :mod:`.reads`: the SELECTs of the read methods, run through SQLAlchemy.
* :mod:`.listing`: the SELECT of ``list_actions``, built from its request
  (:class:`~taskaction_operator.repo.ListActionsRequest`).
* :mod:`.writes`: the write statements, compiled once to psycopg SQL for the pipelined write path.
* :mod:`.compile`: that compilation, and the builders the write statements share.
"""
