"""One custom widget per module."""
