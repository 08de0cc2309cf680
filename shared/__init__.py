"""Ascent's framework: settings, the model seam, agents, runs, persistence, auth and errors."""
