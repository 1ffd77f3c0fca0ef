"""The data: MNIST's files, read strictly, verified, cached and split, and the batches each step sees.

``idx`` reads the file format; ``store`` keeps the data folder as a verified cache;
``download`` fetches what is missing; ``mnist`` verifies and splits; ``batches`` hands out
the rows of each step. Nothing here knows of the training's settings or its loop.
"""
