"""Fleet registry pieces of roi_service: Prometheus service discovery from the devices it knows."""
