"""Domain objects: plain data and rules, no I/O."""
