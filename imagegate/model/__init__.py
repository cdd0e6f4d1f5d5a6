"""The user's files: the Dockerfile parser, the compose model, what a service runs."""
