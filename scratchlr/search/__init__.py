"""Tuning on validation: many ordinary training runs (trials) over the trainer's own flags.

:mod:`.space` turns the flags into trials (a grid, or samples of ranges); :mod:`.trials`
runs each as :func:`scratchlr.train.train` runs it, here, in worker processes or on a Dask
cluster, and scores it on the validation split only; :mod:`.results` keeps the rows, their
CSV file and the best. A client of the training chain, never a part of it.
"""
