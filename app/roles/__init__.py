"""The roles feature: which roles a poll can ping, read through the cache and filled from Discord."""
