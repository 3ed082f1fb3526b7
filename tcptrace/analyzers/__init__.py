"""Analyzers: each watches one aspect of a connection and produces its part of the record."""
