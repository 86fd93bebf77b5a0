"""hw: classic deep-learning coursework with every backward pass derived by hand."""
__version__ = "0.1.0"
