"""One module per model family: its trainer ``train(train, validation, columns, config, device)`` and its pyfunc."""
