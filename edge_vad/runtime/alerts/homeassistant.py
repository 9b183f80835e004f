"""Home Assistant MQTT discovery: each camera becomes a binary sensor (anomaly
on/off) and an image entity showing its latest snapshot, grouped under one
device. Configs are retained, so Home Assistant finds them whenever it starts.

Ids must never collide, or a camera silently has no entity:

* discovery topics are ``DISCOVERY/COMPONENT/DEVICE/CAMERA/config``: the device
  id is Home Assistant's node id, verbatim, so it must be one of Home
  Assistant's id characters (letters, digits, ``_``, ``-``); a camera's object
  id is its name with ``.`` as ``_``, and two cameras of one device whose names
  meet there are rejected by the config (:func:`id_problems`);
* ``unique_id`` joins device and camera with ``/``, which neither may contain,
  so it is unique for every pair.

The device id as its own topic level also lets a broker ACL give each device
its own discovery topics (``pattern write homeassistant/+/%u/#``).
"""

from __future__ import annotations

import json
import re

HA_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def object_id(camera: str) -> str:
    return camera.replace(".", "_")


def id_problems(device_id: str, cameras: list[str]) -> list[str]:
    """Why these names cannot all have Home Assistant entities (empty when they can)."""
    problems = []
    if not HA_ID.match(device_id):
        problems.append(f"device_id {device_id!r}: with outputs.homeassistant enabled it is Home Assistant's node "
                        "id, which allows only letters, digits, '_' and '-'")
    seen: dict[str, str] = {}
    for cam in cameras:
        other = seen.setdefault(object_id(cam), cam)
        if other != cam:
            problems.append(f"cameras {other!r} and {cam!r} get the same Home Assistant object id "
                            f"{object_id(cam)!r} ('.' becomes '_'); rename one")
    return problems


def discovery_topics(discovery_prefix: str, device_id: str, camera: str) -> list[str]:
    return [f"{discovery_prefix}/{component}/{device_id}/{object_id(camera)}/config"
            for component in ("binary_sensor", "image")]


def discovery_messages(discovery_prefix: str, prefix: str, device_id: str, cameras: list[str],
                       version: str = "") -> list[tuple[str, bytes]]:
    base = f"{prefix}/{device_id}"
    device = {"identifiers": [f"edge-vad-{device_id}"], "name": f"edge-vad {device_id}",
              "manufacturer": "edge-vad", "model": "video anomaly detector", "sw_version": version}
    out = []
    for cam in cameras:
        uid = f"edge-vad/{device_id}/{cam}"
        sensor = {
            "name": f"{cam} anomaly", "unique_id": f"{uid}/anomaly", "device_class": "problem",
            "state_topic": f"{base}/{cam}/state", "payload_on": "ON", "payload_off": "OFF",
            "availability_topic": f"{base}/available", "payload_available": "online",
            "payload_not_available": "offline", "device": device,
            "json_attributes_topic": f"{base}/{cam}/events",
        }
        image = {
            "name": f"{cam} snapshot", "unique_id": f"{uid}/snapshot", "image_topic": f"{base}/{cam}/snapshot",
            "content_type": "image/jpeg", "availability_topic": f"{base}/available", "device": device,
        }
        sensor_topic, image_topic = discovery_topics(discovery_prefix, device_id, cam)
        out.append((sensor_topic, json.dumps(sensor).encode()))
        out.append((image_topic, json.dumps(image).encode()))
    return out
