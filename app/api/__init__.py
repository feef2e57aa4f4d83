"""The HTTP service: the Starlette application behind ``polly api``."""
