"""The bottom wing: settings, errors, credentials and log redaction. Imports nothing of ours."""
