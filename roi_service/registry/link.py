"""The registry's own broker link: reads every device's retained `model` topic, sends cmd/model_update."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from roi_service.config import MqttSettings

logger = logging.getLogger(__name__)
MODEL_TOPICS = "edge/v1/+/+/model"


class RolloutLink:
    """`on_model(site/device, payload)` runs for each model message; `command` publishes at QoS 1."""

    def __init__(self, settings: MqttSettings, on_model: Callable[[str, dict[str, Any]], None]) -> None:
        self.settings = settings
        self.on_model = on_model
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.client_id}-registry")
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else None
            self.client.username_pw_set(settings.username, password)
        if settings.ca_file:
            self.client.tls_set_context(ssl.create_default_context(cafile=str(settings.ca_file)))
        self.client.on_connect = lambda c, *_: c.subscribe(MODEL_TOPICS, qos=1)
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def command(self, device: str, args: dict[str, Any]) -> None:
        site, device_id = device.split("/", 1)
        body = json.dumps({"request_id": f"rollout-{args['name']}-{args['version']}", "args": args})
        self.client.publish(f"edge/v1/{site}/{device_id}/cmd/model_update", body, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            logger.warning("ignoring a model message that is not JSON on %s", msg.topic)
            return
        if isinstance(payload, dict):
            self.on_model(f"{parts[2]}/{parts[3]}", payload)
