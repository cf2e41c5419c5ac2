"""Where data comes from: the landing-zone contract, the CDNOW replay and the synthetic generator."""
