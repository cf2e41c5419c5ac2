"""The lake: landing files -> bronze (ingest), bronze -> silver + quarantine (clean), OPTIMIZE/VACUUM (maintenance)."""
