"""The ray provider: jobs on a Ray cluster through its Jobs REST API."""
