"""The DAG files (wiring only; a package so import-linter can check that they sit on top of plugins and jobs)."""
