"""The chaos suite: real processes killed, cut off and flooded, each scenario bounded."""
