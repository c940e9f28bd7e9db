"""Object storage (a local folder or S3), the layout of what is stored, and the archive resource."""
