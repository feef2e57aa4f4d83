"""The sandbox: a local Discord that unmodified discord.py talks to over real HTTP and WebSocket."""
