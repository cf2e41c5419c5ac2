"""Watching the champion: drift statistics in Spark, the nightly drift job, and the alert policy."""
