"""stalwart."""
