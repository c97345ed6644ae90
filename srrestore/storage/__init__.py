"""Files on disk that every layer writes: atomic, exclusive outputs and scratch space.

The lowest layer of the core beside :mod:`srrestore.errors`: checkpoints,
training states and restored outputs all go through it.
"""
