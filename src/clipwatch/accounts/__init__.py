"""Users, API tokens, sessions, preferences, permissions and rate limits."""
