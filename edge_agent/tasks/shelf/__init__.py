"""The shelf job."""
