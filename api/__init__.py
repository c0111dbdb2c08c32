"""HTTP side of inferq."""
