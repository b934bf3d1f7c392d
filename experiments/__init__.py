"""Hydra entry point, trainer loop, result store and loggers."""
