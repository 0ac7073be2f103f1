"""The `cloudtune` command line."""
