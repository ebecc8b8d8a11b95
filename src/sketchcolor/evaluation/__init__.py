"""Evaluation: FID/KID, image metrics, correspondence accuracy, baselines, tables, picture grids."""
