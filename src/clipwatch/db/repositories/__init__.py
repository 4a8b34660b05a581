"""Repositories: every SELECT and every write statement lives here."""
