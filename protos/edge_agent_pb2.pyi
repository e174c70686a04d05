from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TelemetrySource(_message.Message):
    __slots__ = ("metric", "source", "native_period_s", "note")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NATIVE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    source: str
    native_period_s: float
    note: str
    def __init__(self, metric: _Optional[str] = ..., source: _Optional[str] = ..., native_period_s: _Optional[float] = ..., note: _Optional[str] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("kind", "name", "mem_total_bytes", "sources", "execution_providers")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    mem_total_bytes: int
    sources: _containers.RepeatedCompositeFieldContainer[TelemetrySource]
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., mem_total_bytes: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[TelemetrySource, _Mapping]]] = ..., execution_providers: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("name", "version", "hostname", "device", "telemetry_hz", "measured_sample_period_s", "models_available", "models_loaded", "uptime_s", "queue_capacity", "emulated_delay_mean_s", "emulated_delay_jitter_s", "emulated_delay_model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_HZ_FIELD_NUMBER: _ClassVar[int]
    MEASURED_SAMPLE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    MODELS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    MODELS_LOADED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EMULATED_DELAY_MEAN_S_FIELD_NUMBER: _ClassVar[int]
    EMULATED_DELAY_JITTER_S_FIELD_NUMBER: _ClassVar[int]
    EMULATED_DELAY_MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    hostname: str
    device: DeviceInfo
    telemetry_hz: float
    measured_sample_period_s: float
    models_available: int
    models_loaded: int
    uptime_s: float
    queue_capacity: int
    emulated_delay_mean_s: float
    emulated_delay_jitter_s: float
    emulated_delay_model: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., hostname: _Optional[str] = ..., device: _Optional[_Union[DeviceInfo, _Mapping]] = ..., telemetry_hz: _Optional[float] = ..., measured_sample_period_s: _Optional[float] = ..., models_available: _Optional[int] = ..., models_loaded: _Optional[int] = ..., uptime_s: _Optional[float] = ..., queue_capacity: _Optional[int] = ..., emulated_delay_mean_s: _Optional[float] = ..., emulated_delay_jitter_s: _Optional[float] = ..., emulated_delay_model: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelDescription(_message.Message):
    __slots__ = ("name", "kind", "description", "image_shape", "num_classes", "class_names", "num_train_timesteps", "default_steps", "default_scheduler", "default_guidance", "max_batch", "loaded", "error", "file_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    NUM_TRAIN_TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    description: str
    image_shape: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    class_names: _containers.RepeatedScalarFieldContainer[str]
    num_train_timesteps: int
    default_steps: int
    default_scheduler: str
    default_guidance: float
    max_batch: int
    loaded: bool
    error: str
    file_bytes: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., description: _Optional[str] = ..., image_shape: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., class_names: _Optional[_Iterable[str]] = ..., num_train_timesteps: _Optional[int] = ..., default_steps: _Optional[int] = ..., default_scheduler: _Optional[str] = ..., default_guidance: _Optional[float] = ..., max_batch: _Optional[int] = ..., loaded: bool = ..., error: _Optional[str] = ..., file_bytes: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelDescription]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelDescription, _Mapping]]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("name", "load_time_s", "mem_delta_bytes", "execution_providers", "already_loaded")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEM_DELTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_LOADED_FIELD_NUMBER: _ClassVar[int]
    name: str
    load_time_s: float
    mem_delta_bytes: int
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    already_loaded: bool
    def __init__(self, name: _Optional[str] = ..., load_time_s: _Optional[float] = ..., mem_delta_bytes: _Optional[int] = ..., execution_providers: _Optional[_Iterable[str]] = ..., already_loaded: bool = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("name", "freed_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    freed_bytes: int
    def __init__(self, name: _Optional[str] = ..., freed_bytes: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "labels", "steps", "seed", "guidance", "scheduler", "eta", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    labels: _containers.RepeatedScalarFieldContainer[int]
    steps: int
    seed: int
    guidance: float
    scheduler: str
    eta: float
    request_id: str
    def __init__(self, model: _Optional[str] = ..., labels: _Optional[_Iterable[int]] = ..., steps: _Optional[int] = ..., seed: _Optional[int] = ..., guidance: _Optional[float] = ..., scheduler: _Optional[str] = ..., eta: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("queue_time_s", "compute_time_s", "step_times_s", "decode_time_s", "peak_mem_bytes", "peak_mem_source", "energy_j", "energy_source", "energy_method", "total_time_s", "emulated_delay_s", "emulated_delay_model")
    QUEUE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMES_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEM_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    ENERGY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METHOD_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    EMULATED_DELAY_S_FIELD_NUMBER: _ClassVar[int]
    EMULATED_DELAY_MODEL_FIELD_NUMBER: _ClassVar[int]
    queue_time_s: float
    compute_time_s: float
    step_times_s: _containers.RepeatedScalarFieldContainer[float]
    decode_time_s: float
    peak_mem_bytes: int
    peak_mem_source: str
    energy_j: float
    energy_source: str
    energy_method: str
    total_time_s: float
    emulated_delay_s: float
    emulated_delay_model: str
    def __init__(self, queue_time_s: _Optional[float] = ..., compute_time_s: _Optional[float] = ..., step_times_s: _Optional[_Iterable[float]] = ..., decode_time_s: _Optional[float] = ..., peak_mem_bytes: _Optional[int] = ..., peak_mem_source: _Optional[str] = ..., energy_j: _Optional[float] = ..., energy_source: _Optional[str] = ..., energy_method: _Optional[str] = ..., total_time_s: _Optional[float] = ..., emulated_delay_s: _Optional[float] = ..., emulated_delay_model: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("model", "request_id", "images", "steps", "scheduler", "guidance", "seed", "measurement", "agent")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    model: str
    request_id: str
    images: Tensor
    steps: int
    scheduler: str
    guidance: float
    seed: int
    measurement: Measurement
    agent: str
    def __init__(self, model: _Optional[str] = ..., request_id: _Optional[str] = ..., images: _Optional[_Union[Tensor, _Mapping]] = ..., steps: _Optional[int] = ..., scheduler: _Optional[str] = ..., guidance: _Optional[float] = ..., seed: _Optional[int] = ..., measurement: _Optional[_Union[Measurement, _Mapping]] = ..., agent: _Optional[str] = ...) -> None: ...

class StreamTelemetryRequest(_message.Message):
    __slots__ = ("from_seq", "batch_size")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    batch_size: int
    def __init__(self, from_seq: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class TelemetrySample(_message.Message):
    __slots__ = ("seq", "t_unix_s", "power_w", "power_source", "energy_j", "energy_source", "mem_used_bytes", "mem_total_bytes", "mem_source", "util_pct", "clock_mhz", "rails_w", "extra", "queue_depth")
    class RailsWEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    T_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    POWER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    ENERGY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEM_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    UTIL_PCT_FIELD_NUMBER: _ClassVar[int]
    CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    RAILS_W_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    t_unix_s: float
    power_w: float
    power_source: str
    energy_j: float
    energy_source: str
    mem_used_bytes: int
    mem_total_bytes: int
    mem_source: str
    util_pct: float
    clock_mhz: float
    rails_w: _containers.ScalarMap[str, float]
    extra: _containers.ScalarMap[str, float]
    queue_depth: int
    def __init__(self, seq: _Optional[int] = ..., t_unix_s: _Optional[float] = ..., power_w: _Optional[float] = ..., power_source: _Optional[str] = ..., energy_j: _Optional[float] = ..., energy_source: _Optional[str] = ..., mem_used_bytes: _Optional[int] = ..., mem_total_bytes: _Optional[int] = ..., mem_source: _Optional[str] = ..., util_pct: _Optional[float] = ..., clock_mhz: _Optional[float] = ..., rails_w: _Optional[_Mapping[str, float]] = ..., extra: _Optional[_Mapping[str, float]] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class TelemetryBatch(_message.Message):
    __slots__ = ("agent", "samples", "next_seq", "dropped")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    agent: str
    samples: _containers.RepeatedCompositeFieldContainer[TelemetrySample]
    next_seq: int
    dropped: int
    def __init__(self, agent: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[TelemetrySample, _Mapping]]] = ..., next_seq: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class SetPowerModeRequest(_message.Message):
    __slots__ = ("mode", "power_limit_w")
    MODE_FIELD_NUMBER: _ClassVar[int]
    POWER_LIMIT_W_FIELD_NUMBER: _ClassVar[int]
    mode: str
    power_limit_w: float
    def __init__(self, mode: _Optional[str] = ..., power_limit_w: _Optional[float] = ...) -> None: ...

class SetPowerModeResponse(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: str
    def __init__(self, mode: _Optional[str] = ...) -> None: ...
