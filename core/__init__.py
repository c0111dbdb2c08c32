"""Pure domain of inferq: models, jobs, cache keys, priorities and errors."""
