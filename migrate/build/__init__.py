"""Build: wheels from the installed files, a shared store, one venv per app."""
