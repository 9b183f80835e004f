"""The device configuration file (``edge-vad run --config DEVICE.yaml``).

Validated with pydantic, unknown keys rejected, and every error reported with
the YAML line it comes from and the camera it concerns, because the person
reading it is standing next to a device with a text editor, not a debugger.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.capture.motion_gate import MotionGateSettings

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _files_checked(info: ValidationInfo) -> bool:
    """False while `config validate` parses: it checks files with the bundles, so one run lists every problem."""
    return (info.context or {}).get("check_files", True)


# Files the broker section names: (section, key), checked to exist.
BROKER_FILES = (("tls", "ca_file"), ("tls", "cert_file"), ("tls", "key_file"), (None, "password_file"))


class TlsConfig(_Strict):
    ca_file: Path | None = None  # None: the system's trusted CAs
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    insecure: bool = False  # skip host name verification (self-signed lab brokers only)

    @model_validator(mode="after")
    def _pair(self, info: ValidationInfo):
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and its key)")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file() and _files_checked(info):
                raise ValueError(f"{name} {path}: no such file")
        return self


class BrokerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    tls: TlsConfig | None = None
    username: str | None = None
    # The password never sits in the config itself: configs get copied, pasted
    # into tickets and committed. It comes from a file or an environment variable.
    password_file: Path | None = None
    password_env: str | None = None
    # systemd's LoadCredential= name: read from $CREDENTIALS_DIRECTORY/NAME, so the file can stay root-only.
    password_credential: str | None = None
    keepalive: int = Field(30, ge=5)
    client_id: str | None = None
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # Only for `edge-vad run --broker mqtt://user:pass@host` (a URL the user typed); never from YAML.
    _password: SecretStr | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _password_source(self, info: ValidationInfo):
        given = [k for k in ("password_file", "password_env", "password_credential") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of password_file, password_env, password_credential, not {' and '.join(given)}")
        if given and not self.username:
            raise ValueError("a password needs a username")
        if self.password_credential is not None and not _NAME.match(self.password_credential):
            raise ValueError("password_credential is a LoadCredential= name: letters, digits, '_', '-' or '.'")
        if self.password_file is not None and not Path(self.password_file).is_file() and _files_checked(info):
            raise ValueError(f"password_file {self.password_file}: no such file")
        return self

    def password(self) -> SecretStr | None:
        if self._password is not None:
            return self._password
        if self.password_file is not None:
            return SecretStr(Path(self.password_file).read_text().strip())
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise EdgeVadError(f"broker.password_env: environment variable {self.password_env} is not set")
            return SecretStr(value)
        if self.password_credential is not None:
            return SecretStr(self.credential_path().read_text().strip())
        return None

    def credential_path(self) -> Path:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise EdgeVadError(f"broker.password_credential {self.password_credential!r}: CREDENTIALS_DIRECTORY is not "
                               "set; it comes from systemd's LoadCredential= (run the daemon from its unit, or use "
                               "password_file outside systemd)")
        path = Path(folder) / self.password_credential
        if not path.is_file():
            raise EdgeVadError(f"broker.password_credential: {path}: no such credential; check the unit's "
                               f"LoadCredential={self.password_credential}:...")
        return path

    def __str__(self) -> str:  # what logs show: never credentials
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class MotionGateConfig(_Strict):
    """Skip the model while nothing moves (``motion_gate: true`` for the gate's own defaults)."""
    pixel_delta: int = Field(MotionGateSettings.pixel_delta, ge=1, le=255)  # gray levels a thumbnail pixel must change by
    min_changed: float = Field(MotionGateSettings.min_changed, ge=0, lt=1)  # fraction of thumbnail pixels that must change


class CameraConfig(_Strict):
    name: str
    source: str  # file, /dev/videoN, index, rtsp/http URL, GStreamer pipeline ('... ! appsink'), picamera2[:N]
    bundle: Path
    profile: str | None = None  # device profile name or YAML file: supplies budget_ms and threads
    roi: tuple[int, int, int, int] | None = None  # x, y, width, height in source pixels
    threshold: float | None = None  # default: the bundle's calibrated threshold
    end_threshold: float | None = None
    min_frames: int = Field(3, ge=1)
    end_frames: int = Field(5, ge=1)
    update_every: int = Field(10, ge=0)
    fps: float | None = Field(None, gt=0)  # model frame rate; default: the bundle's (from training)
    budget_ms: float | None = Field(None, gt=0)  # default: profile's, else one model frame period
    # None: files replay losslessly as fast as the model allows, live sources are real time.
    realtime: bool | None = None
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # A gap longer than this in the stream resets the model state (the scene moved on).
    reset_after_gap_s: float = Field(2.0, gt=0)
    score_topic: bool = False
    score_rate_hz: float = Field(1.0, gt=0)
    motion_gate: MotionGateConfig | None = None

    @field_validator("motion_gate", mode="before")
    @classmethod
    def _gate(cls, v):
        return {} if v is True else (None if v is False else v)

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v):
        # `source: 0` is how people write "the first camera"; YAML makes it an int.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("source")
    @classmethod
    def _scheme(cls, v: str) -> str:
        from edge_vad.runtime.capture.sources import normalise_source

        try:
            return normalise_source(v)
        except EdgeVadError as exc:
            raise ValueError(str(exc).removeprefix(f"source {v!r}: ")) from None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("camera name must be letters, digits, '_', '-' or '.' (it becomes an MQTT topic level)")
        return v

    @field_validator("roi")
    @classmethod
    def _roi(cls, v):
        if v is not None and (v[2] <= 0 or v[3] <= 0 or v[0] < 0 or v[1] < 0):
            raise ValueError("roi is [x, y, width, height] with x, y >= 0 and a positive width and height")
        return v

    @model_validator(mode="after")
    def _thresholds(self):
        if self.threshold is not None and self.end_threshold is not None and self.end_threshold > self.threshold:
            raise ValueError(f"end_threshold ({self.end_threshold}) must not exceed threshold ({self.threshold})")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class HomeAssistantConfig(_Strict):
    enabled: bool = False
    discovery_prefix: str = "homeassistant"


class OutputsConfig(_Strict):
    snapshots: bool = True
    stats_interval_s: float = Field(10.0, gt=0)
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()


class StateConfig(_Strict):
    dir: Path = Path("edge-vad-state")  # outbox, model state snapshots, latest stats
    snapshot_interval_s: float = Field(30.0, gt=0)
    max_age_s: float = Field(3600.0, gt=0)  # an older snapshot describes a scene that has moved on


class MetricsConfig(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, lt=65536)  # 0: any free port


class DeviceConfig(_Strict):
    device_id: str = Field(default_factory=socket.gethostname)
    prefix: str = "edge-vad"
    broker: BrokerConfig = BrokerConfig()
    cameras: list[CameraConfig] = Field(min_length=1)
    outputs: OutputsConfig = OutputsConfig()
    state: StateConfig = StateConfig()
    metrics: MetricsConfig = MetricsConfig()
    threads: int | None = Field(None, ge=1)  # engine threads, and OpenCV's for preprocessing (default: the engines' own)
    batch: bool = True  # cameras sharing a bundle run in one batched backend call
    log_format: Literal["text", "json"] = "text"

    @field_validator("device_id")
    @classmethod
    def _device(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("device_id must be letters, digits, '_', '-' or '.' (it becomes an MQTT topic level)")
        return v

    @model_validator(mode="after")
    def _unique(self):
        names = [c.name for c in self.cameras]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(dup)}")
        if self.outputs.homeassistant.enabled:
            from edge_vad.runtime.alerts.homeassistant import id_problems

            problems = id_problems(self.device_id, names)
            if problems:
                raise ValueError("; ".join(problems))
        return self


# ------------------------------------------------------------------ loading


def _node_at(root, loc: tuple) -> tuple[object, bool]:
    """Deepest YAML node on the error's path; the bool says whether the path ended at a key."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    break
            else:
                return node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root, loc: tuple):
    parent, ok = _node_at(root, loc[:-1])
    if ok and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if key.value == loc[-1]:
                return key
    return None


def _describe(loc: tuple, data) -> str:
    parts = []
    for p in loc:
        parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + str(p)))
    where = "".join(parts) or "(top level)"
    if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
        try:
            name = data["cameras"][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        where += f" (camera {name!r})" if name else f" (camera #{loc[1] + 1})"
    return where


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(loc: tuple) -> list[str]:
    """The keys the config allows at ``loc`` (for "did you mean")."""
    model: type[BaseModel] | None = DeviceConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return list(model.model_fields)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's last-one-wins for a repeated key turned ``threshold: 99999`` into "no alerts": record them instead."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []  # (key, first line, repeated line)

    def construct_mapping(self, node, deep=False):
        first: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.YAMLError):
                continue
            line = key_node.start_mark.line + 1
            if key in first:
                self.duplicates.append((str(key), first[key], line))
            else:
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str):
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


def format_errors(path: Path, text: str, exc: ValidationError, data) -> list[str]:
    root = yaml.compose(text)
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Point at the key ("broker:") rather than where its value starts (the next line for a block).
        node = _key_node(root, loc) if loc and isinstance(loc[-1], str) else None
        if node is None:
            node, _ = _node_at(root, loc)
        line = node.start_mark.line + 1 if node is not None else 1
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1, cutoff=0.6)
            msg = (f"unknown key; did you mean '{close[0]}'?" if close else
                   "unknown key (check the spelling; see firmware_configs/daemon/ for every key)")
        out.append(f"{path}:{line}: {_describe(loc, data)}: {msg}")
    return out


def parse_config(text: str, path: Path | str = "<config>", check_files: bool = True) -> DeviceConfig:
    path = Path(path)
    try:
        data, duplicates = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise EdgeVadError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if duplicates:
        lines = [f"{path}:{again}: {key!r} is given twice (first on line {first}); YAML would silently keep the "
                 "second: delete one" for key, first, again in duplicates]
        raise EdgeVadError(f"{path}: {len(lines)} error(s)\n" + "\n".join("  " + s for s in lines))
    if not isinstance(data, dict):
        raise EdgeVadError(f"{path}:1: expected a mapping with device_id, broker, cameras, ...")
    try:
        config = DeviceConfig.model_validate(data, context={"check_files": check_files})
    except ValidationError as exc:
        lines = format_errors(path, text, exc, data)
        raise EdgeVadError(f"{path}: {len(lines)} error(s)\n" + "\n".join("  " + s for s in lines)) from None
    # Relative paths are relative to the config file, so a config travels with its bundles.
    base = path.parent if path.name != "<config>" else Path.cwd()
    from edge_vad.runtime.capture.sources import describe_source

    for cam in config.cameras:
        if not cam.bundle.is_absolute():
            cam.bundle = base / cam.bundle
        if describe_source(cam.source) == "file" and not Path(cam.source).is_absolute():
            cam.source = str(base / cam.source)
    if not config.state.dir.is_absolute():
        config.state.dir = base / config.state.dir
    return config


def load_config(path: str | Path, check_files: bool = True) -> DeviceConfig:
    path = Path(path)
    if not path.is_file():
        raise EdgeVadError(f"{path}: no such config file")
    return parse_config(path.read_text(), path, check_files)


def resolve_profile(name: str | None) -> dict:
    """A device profile's runtime fields (``budget_ms``, ``threads``) if it has them."""
    if name is None:
        return {}
    try:  # the device profiles of edge_vad.profiles (profiles/*.yaml): latency_budget_ms per camera
        from edge_vad.profiles import load_profile
    except ImportError:
        load_profile = None
    if load_profile is not None:
        profile = load_profile(name)
        out = {"budget_ms": float(profile.latency_budget_ms)}
        threads = getattr(profile, "threads", None)
        if isinstance(threads, int):
            out["threads"] = threads
        return out
    candidates = [Path(name)]
    root = Path(__file__).resolve().parents[3] / "profiles"
    candidates += [root / f"{name}.yaml", root / f"{name}.yml", root / name]
    for p in candidates:
        if p.is_file():
            data = yaml.safe_load(p.read_text()) or {}
            runtime = data.get("runtime", data) if isinstance(data, dict) else {}
            return {k: runtime[k] for k in ("budget_ms", "threads") if k in runtime}
    raise EdgeVadError(f"profile {name!r}: no such profile (looked for {', '.join(str(c) for c in candidates)})")


def check_resources(config: DeviceConfig, path: Path | str = "<config>", text: str | None = None) -> list[str]:
    """What validation alone cannot see: bundles that are missing or corrupt,
    unknown profiles, video files that do not exist. One message per problem."""
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.capture.sources import GSTREAMER_HINT, describe_source, gstreamer_available

    root = yaml.compose(text) if text else None

    def where(i: int, key: str) -> str:
        line = ""
        if root is not None:
            node, _ = _node_at(root, ("cameras", i, key))
            line = f":{node.start_mark.line + 1}" if node is not None else ""
        return f"{path}{line}: cameras[{i}].{key} (camera {config.cameras[i].name!r})"

    problems = []
    for section, key in BROKER_FILES:
        owner = getattr(config.broker, section) if section else config.broker
        file = getattr(owner, key, None) if owner is not None else None
        if file is not None and not Path(file).is_file():
            loc = ("broker", section, key) if section else ("broker", key)
            node = _key_node(root, loc) if root is not None else None
            line = f":{node.start_mark.line + 1}" if node is not None else ""
            problems.append(f"{path}{line}: {'.'.join(loc)}: {file}: no such file")
    seen: dict[Path, str | None] = {}
    for i, cam in enumerate(config.cameras):
        bundle = Path(cam.bundle)
        if bundle not in seen:
            try:
                _probe_bundle(load_bundle(bundle))
                seen[bundle] = None
            except EdgeVadError as exc:
                seen[bundle] = str(exc)
        if seen[bundle]:
            problems.append(f"{where(i, 'bundle')}: {seen[bundle]}")
        if cam.profile is not None:
            try:
                resolve_profile(cam.profile)
            except EdgeVadError as exc:
                problems.append(f"{where(i, 'profile')}: {exc}")
        if describe_source(cam.source) == "file" and not Path(cam.source).exists():
            problems.append(f"{where(i, 'source')}: {cam.source}: no such video file or camera device")
        if describe_source(cam.source) == "gstreamer" and not gstreamer_available():
            problems.append(f"{where(i, 'source')}: GStreamer pipeline, but {GSTREAMER_HINT}")
    if config.broker.password_env and os.environ.get(config.broker.password_env) is None:
        problems.append(f"{path}: broker.password_env: environment variable {config.broker.password_env} is not set")
    if config.broker.password_credential and os.environ.get("CREDENTIALS_DIRECTORY"):
        try:
            config.broker.credential_path()
        except EdgeVadError as exc:
            problems.append(f"{path}: {exc}")
    return problems


def _probe_bundle(bundle) -> None:
    """Score one blank frame where that is cheap (ONNX Runtime, OpenVINO); the manifest's own consistency always."""
    from edge_vad.runtime.daemon.bundle_check import PROBE_BACKENDS, probe, state_mismatch
    from edge_vad.runtime.daemon.exit_codes import BundleInvalid

    if bundle.manifest.target.backend in PROBE_BACKENDS:
        from edge_vad.runtime.stream import CameraStream

        probe(CameraStream(bundle, threads=1))
        return
    why = state_mismatch(bundle.manifest)
    if why:
        raise BundleInvalid(f"bundle {bundle.root} cannot score frames: {why}")


def config_warnings(config: DeviceConfig) -> list[str]:
    """What is allowed but probably wrong: said by ``config validate``, not fatal."""
    out = []
    b = config.broker
    if b.username and b.username != config.device_id:
        out.append(f"broker.username {b.username!r} is not device_id {config.device_id!r}: under a broker ACL keyed "
                   f"on the username (the shipped one: pattern write edge-vad/%u/#) every publish of this device is "
                   "refused; use the device id as its MQTT username")
    elif b.username and config.prefix != "edge-vad":
        out.append(f"prefix {config.prefix!r}: the shipped broker ACL lets devices write edge-vad/%u/# only")
    if b.password_credential and not os.environ.get("CREDENTIALS_DIRECTORY"):
        out.append(f"broker.password_credential {b.password_credential!r} is read from systemd's LoadCredential= "
                   "when the unit runs; not checked here (CREDENTIALS_DIRECTORY is not set)")
    return out


def validate_file(path: str | Path) -> DeviceConfig:
    """Parse and check a device config; one EdgeVadError listing every problem."""
    path = Path(path)
    config = load_config(path, check_files=False)  # missing files are listed with the rest, below
    problems = check_resources(config, path, path.read_text())
    if problems:
        raise EdgeVadError(f"{path}: {len(problems)} error(s)\n" + "\n".join("  " + p for p in problems))
    return config


def config_from_flags(bundle, source: str, camera: str, broker_url: str, prefix: str, device_id: str | None,
                      state_dir, threads: int | None) -> DeviceConfig:
    """The one-camera config that ``edge-vad run --bundle --source`` flags describe."""
    from edge_vad.runtime.alerts.mqtt import parse_broker_url

    address = parse_broker_url(broker_url)
    try:
        config = DeviceConfig(
            device_id=device_id or socket.gethostname(), prefix=prefix, threads=threads,
            broker=BrokerConfig(host=address.host, port=address.port, username=address.username,
                                tls=TlsConfig() if address.tls else None),
            cameras=[CameraConfig(name=camera, source=str(source), bundle=Path(bundle))],
            state=StateConfig(dir=Path(state_dir)))
    except ValidationError as exc:
        raise EdgeVadError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    if address.password is not None:
        config.broker._password = SecretStr(address.password)
    return config
