"""The command line, ``python -m scratchlr [COMMAND] ...``: a client of the package, imported by
nothing in it."""
