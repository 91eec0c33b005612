#!/usr/bin/python3
"""bench/run's entry point; the bench itself is the package pgfailover_bench beside this file."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgfailover_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
