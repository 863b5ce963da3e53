"""mmshell: an interactive shell over a simulated Linux mm (anonymous THP swap)."""

__version__ = "0.1.0"
