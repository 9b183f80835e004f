"""Home Assistant MQTT discovery: each camera becomes a binary sensor (anomaly
on/off) and an image entity showing its latest snapshot, grouped under one
device. Configs are retained, so Home Assistant finds them whenever it starts.
"""

from __future__ import annotations

import json


def discovery_messages(discovery_prefix: str, prefix: str, device_id: str, cameras: list[str],
                       version: str = "") -> list[tuple[str, bytes]]:
    base = f"{prefix}/{device_id}"
    device = {"identifiers": [f"edge-vad-{device_id}"], "name": f"edge-vad {device_id}",
              "manufacturer": "edge-vad", "model": "video anomaly detector", "sw_version": version}
    out = []
    for cam in cameras:
        uid = f"edge_vad_{device_id}_{cam}".replace("-", "_").replace(".", "_")
        sensor = {
            "name": f"{cam} anomaly", "unique_id": f"{uid}_anomaly", "device_class": "problem",
            "state_topic": f"{base}/{cam}/state", "payload_on": "ON", "payload_off": "OFF",
            "availability_topic": f"{base}/available", "payload_available": "online",
            "payload_not_available": "offline", "device": device,
            "json_attributes_topic": f"{base}/{cam}/events",
        }
        image = {
            "name": f"{cam} snapshot", "unique_id": f"{uid}_snapshot", "image_topic": f"{base}/{cam}/snapshot",
            "content_type": "image/jpeg", "availability_topic": f"{base}/available", "device": device,
        }
        out.append((f"{discovery_prefix}/binary_sensor/{uid}/config", json.dumps(sensor).encode()))
        out.append((f"{discovery_prefix}/image/{uid}/config", json.dumps(image).encode()))
    return out
