"""edge_agent: the device daemon that runs quantized models on cameras and sensors and streams results over MQTT."""

__version__ = "0.1.0"
