"""Tests of the UI tier: its API client and the Chainlit app in a real browser."""
