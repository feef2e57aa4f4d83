"""Redis: every key this service uses, the scripts that keep writes ordered, and the role cache."""
