"""A job's outputs: remote ones brought home to its output folder (`homecoming`), and the
files of any job's folder listed and served (`files`)."""
