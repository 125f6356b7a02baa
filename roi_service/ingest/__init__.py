"""Ingest: validate device MQTT messages with the shared contract and store each exactly once."""
