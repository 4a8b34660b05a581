"""Discord: webhook URLs, route matching, the message builder (more comes with issue #5)."""
