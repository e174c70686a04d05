from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TelemetrySource(_message.Message):
    __slots__ = ("metric", "source")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    source: str
    def __init__(self, metric: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("device_kind", "device_name", "mem_total_bytes", "telemetry_sources", "models", "version", "execution_providers")
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_SOURCES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    device_kind: str
    device_name: str
    mem_total_bytes: int
    telemetry_sources: _containers.RepeatedCompositeFieldContainer[TelemetrySource]
    models: _containers.RepeatedScalarFieldContainer[str]
    version: str
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, device_kind: _Optional[str] = ..., device_name: _Optional[str] = ..., mem_total_bytes: _Optional[int] = ..., telemetry_sources: _Optional[_Iterable[_Union[TelemetrySource, _Mapping]]] = ..., models: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., execution_providers: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterAgentRequest(_message.Message):
    __slots__ = ("name", "address", "capabilities", "instance_id", "loaded_models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    capabilities: Capabilities
    instance_id: str
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., instance_id: _Optional[str] = ..., loaded_models: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterAgentResponse(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("name", "seq", "loaded_models", "queue_depth")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    seq: int
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    queue_depth: int
    def __init__(self, name: _Optional[str] = ..., seq: _Optional[int] = ..., loaded_models: _Optional[_Iterable[str]] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("request_id", "model", "label", "quality_floor", "steps", "deadline_s", "seed", "snr_db", "w_latency", "w_energy")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FLOOR_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SNR_DB_FIELD_NUMBER: _ClassVar[int]
    W_LATENCY_FIELD_NUMBER: _ClassVar[int]
    W_ENERGY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    label: int
    quality_floor: float
    steps: int
    deadline_s: float
    seed: int
    snr_db: float
    w_latency: float
    w_energy: float
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., label: _Optional[int] = ..., quality_floor: _Optional[float] = ..., steps: _Optional[int] = ..., deadline_s: _Optional[float] = ..., seed: _Optional[int] = ..., snr_db: _Optional[float] = ..., w_latency: _Optional[float] = ..., w_energy: _Optional[float] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("request_id", "model", "agent", "image", "steps", "steps_source", "latency_s", "agent_time_s", "queue_time_s", "compute_time_s", "energy_j", "energy_source", "quality", "attempts", "loaded_model", "downlink_s", "bandwidth_share")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STEPS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    AGENT_TIME_S_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    ENERGY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODEL_FIELD_NUMBER: _ClassVar[int]
    DOWNLINK_S_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_SHARE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    agent: str
    image: Tensor
    steps: int
    steps_source: str
    latency_s: float
    agent_time_s: float
    queue_time_s: float
    compute_time_s: float
    energy_j: float
    energy_source: str
    quality: float
    attempts: int
    loaded_model: bool
    downlink_s: float
    bandwidth_share: float
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., agent: _Optional[str] = ..., image: _Optional[_Union[Tensor, _Mapping]] = ..., steps: _Optional[int] = ..., steps_source: _Optional[str] = ..., latency_s: _Optional[float] = ..., agent_time_s: _Optional[float] = ..., queue_time_s: _Optional[float] = ..., compute_time_s: _Optional[float] = ..., energy_j: _Optional[float] = ..., energy_source: _Optional[str] = ..., quality: _Optional[float] = ..., attempts: _Optional[int] = ..., loaded_model: bool = ..., downlink_s: _Optional[float] = ..., bandwidth_share: _Optional[float] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("name", "address", "state", "last_heartbeat_age_s", "loaded_models", "queue_depth", "power_source", "power_w", "registered", "device_kind", "telemetry_rows", "telemetry_dropped")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_S_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    POWER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_ROWS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_DROPPED_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    state: str
    last_heartbeat_age_s: float
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    queue_depth: int
    power_source: str
    power_w: float
    registered: bool
    device_kind: str
    telemetry_rows: int
    telemetry_dropped: int
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[str] = ..., last_heartbeat_age_s: _Optional[float] = ..., loaded_models: _Optional[_Iterable[str]] = ..., queue_depth: _Optional[int] = ..., power_source: _Optional[str] = ..., power_w: _Optional[float] = ..., registered: bool = ..., device_kind: _Optional[str] = ..., telemetry_rows: _Optional[int] = ..., telemetry_dropped: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("agents", "requests_by_outcome", "policies", "run_id", "uptime_s")
    class RequestsByOutcomeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_BY_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentStatus]
    requests_by_outcome: _containers.ScalarMap[str, int]
    policies: _containers.RepeatedScalarFieldContainer[str]
    run_id: str
    uptime_s: float
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentStatus, _Mapping]]] = ..., requests_by_outcome: _Optional[_Mapping[str, int]] = ..., policies: _Optional[_Iterable[str]] = ..., run_id: _Optional[str] = ..., uptime_s: _Optional[float] = ...) -> None: ...
