"""Exercises a learner can check: write the model's functions, then compare them with the engine's.

:mod:`.skeleton` writes ``my_model.py`` (the signatures, docstrings and equations of
:mod:`scratchlr.model`'s functions, their bodies left to write) and a short README;
:mod:`.checks` imports the learner's file and checks each function against the engine's,
with hints. A client of the chain, never a part of it.
"""
