"""The clip archive's services: search, import, read schemas."""
