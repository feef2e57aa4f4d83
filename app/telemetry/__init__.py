"""What the service tells operators: metrics and logs."""
