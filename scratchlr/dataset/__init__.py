"""The data: a data set's record, its files read strictly, verified, cached and split, and the
batches each step sees.

``records`` holds each data set's record (files, checksums, mirrors, classes); ``idx`` reads
the file format; ``store`` keeps the data folder as a verified cache; ``download`` fetches
what is missing; ``splits`` verifies and splits; ``batches`` hands out the rows of each step.
Nothing here knows of the training's settings or its loop.
"""
