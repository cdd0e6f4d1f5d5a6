"""Configuration: settings (defaults → pyproject → env → flags), discovery, the project resolved."""
