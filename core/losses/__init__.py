"""Losses that change how a base loss is optimised."""
