"""Writing files safely: `ownership.py`, the rule every program of the project follows when it writes."""
