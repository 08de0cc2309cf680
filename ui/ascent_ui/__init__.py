"""The Ascent UI: a Chainlit app and its typed HTTP client of the Ascent API."""
