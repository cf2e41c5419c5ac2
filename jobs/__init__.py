"""All platform logic: one module per stage, pure transforms plus a ``main(argv) -> int`` CLI."""
