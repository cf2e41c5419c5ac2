"""Point-in-time customer features (build) and matured labels (labels) in gold."""
