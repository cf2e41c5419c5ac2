"""All of the platform's logic, one subpackage per stage of the loop (see docs/architecture.md).

sources -> lake -> features -> quality -> ml -> serving -> monitoring -> notify, each importing only the stages
before it and the leaf modules (settings, config, spark, cli, reports); ``make lint`` checks this with import-linter.
Every job is pure DataFrame functions plus a ``main(argv) -> int`` CLI, so the same code runs under spark-submit,
in a pod, from the shell and in tests. Nothing here imports Airflow.
"""
