"""Local tooling: the dev host that serves the real function objects, and compose files."""
