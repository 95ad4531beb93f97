"""The example resource: items with a unique name."""
