"""The gateway bot: keeps the role cache right from Discord's own events, and publishes changes."""
