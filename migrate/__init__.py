"""concentric-migrate: from concentric Python installs to one virtualenv per app."""

__version__ = "0.1.0"
