"""The files a run writes and reads: model files, histories, a learner's own images, and
the atomic write they all go through."""
