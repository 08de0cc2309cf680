"""Stand-ins, on the wire, for services these machines cannot run (daprd, Upstash)."""
