"""The sensor job."""
