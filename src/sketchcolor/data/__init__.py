"""Data: reading images, synthesising (sketch, reference, target, correspondence) triplets."""
