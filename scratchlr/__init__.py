"""scratchlr: softmax regression on MNIST, by hand, in NumPy or CuPy.

Re-creates TensorFlow's "Logistic Regression (eager API)" example with every formula
written out: see :mod:`scratchlr.model` for the math and :mod:`scratchlr.train` for the loop.
"""

__version__ = "0.1.0"
