"""jmap."""
