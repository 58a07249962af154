"""Infrastructure: configuration, errors, metrics."""
