"""spark-submit entry point: ``spark-submit include/spark_entry.py jobs.<module> [args]`` runs that job's main."""

import sys
from importlib import import_module

if __name__ == "__main__":
    module = import_module(sys.argv[1])
    raise SystemExit(module.main(sys.argv[2:]))
