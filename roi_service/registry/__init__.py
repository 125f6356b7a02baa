"""roi_service as a small model registry for fleets without MLflow: model versions, staged rollouts,
and Prometheus service discovery from the devices it knows."""
