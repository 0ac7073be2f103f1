"""Trainers that cloudtune runs: the built-in reference trainer, and the launcher around them."""
