"""The triggers: one blueprint per area; each handler parses, calls shared/, and maps errors."""
