"""Polly API: a GraphQL backend for Discord poll tools."""

__version__ = "0.1.0"
