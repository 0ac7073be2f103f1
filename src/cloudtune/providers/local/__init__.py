"""The local provider: trainer processes on this machine."""
