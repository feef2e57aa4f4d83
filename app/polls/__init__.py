"""Polls: what they hold, the rules for creating and changing them, and the scheduler that runs them."""
