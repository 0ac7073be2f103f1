"""Providers: where a job's trainer actually runs, behind one small protocol (`base.py`)."""
