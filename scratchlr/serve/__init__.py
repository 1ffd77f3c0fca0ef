"""The demo page: a learner draws a digit and watches the model decide (``scratchlr serve``).

:mod:`.api` computes what the page shows, with the engine's own functions (the reader and
the forward pass that ``scratchlr predict`` uses); :mod:`.server` answers HTTP with the
standard library's ``ThreadingHTTPServer``, hardened against bad clients; ``page/`` holds
the one page, its script and its style, shipped as package data. A client of the training
chain, never a part of it.
"""
