"""A study's results read back from its run folders: the paper's tables (summary.py) and figures (figures.py).

Run as `python study/summary.py runs/`. Nothing on the training path imports this folder.
"""
