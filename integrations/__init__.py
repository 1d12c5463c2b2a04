"""The outside world: supplier API clients, webhook verification, notification channels.

Arrives with the parts-sourcing issue.
"""
