"""Accounts and what they may do: sign-in, roles, administration, audit log, CSRF and rate limits."""
