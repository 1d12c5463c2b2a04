"""arq tasks and WorkerSettings: thin tasks that call the same use cases as the API.

Arrives with the workers issue.
"""
