"""Local tooling, never shipped to pods: the demo, the make-up stack, the mail sink, a one-machine Spark cluster."""
