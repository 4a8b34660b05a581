"""Twitch integration: Helix shapes, synthetic worlds (and later the client, sync and EventSub)."""
