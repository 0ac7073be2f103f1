"""The Replicate provider: cloud GPUs through Replicate's prediction API."""
