"""The logic: plain functions over domain objects. Nothing here imports FastAPI."""
