"""CLI commands kept out of cli.py, each in its own module; cli.py imports one only when it runs."""
