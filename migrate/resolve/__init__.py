"""Resolve: per app, the path each entry point really gets and what it really uses."""
