"""Everything that speaks Discord: the REST client seam and Discord's permission rules."""
