"""The defect job."""
