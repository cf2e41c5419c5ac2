"""The data-quality gate: Great Expectations suites from include/expectations/ over a window of the lake."""
