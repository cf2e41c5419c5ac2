"""Using the champion: nightly batch scoring into gold predictions (online serving lands here too)."""
