"""Wire schemas of the REST API: what the server accepts and returns, and what the SDK parses.

Pydantic models, separate from the domain entities (which they convert from
with explicit ``from_entity`` functions) so the public API can stay stable while
the domain evolves. Request bodies forbid unknown fields and bound every size,
so a typo or an oversized value is a 400 naming the field, never silently
ignored. Output models keep the entities' field names, so code that prints an
entity prints its wire form unchanged (the CLI relies on this in remote mode).

Submodules by topic: :mod:`~aimass.schemas.access` (projects, keys, whoami, audit),
:mod:`~aimass.schemas.data` (datasets, samples, bases), :mod:`~aimass.schemas.registry`
(models, versions, aliases, attachments, bundle verification),
:mod:`~aimass.schemas.pipelines` (pipeline versions and predictions), :mod:`~aimass.schemas.jobs`
and :mod:`~aimass.schemas.serving` (predict, generate); shared types live in
``aimass.schemas._common``. Import from :mod:`aimass.schemas` itself: the submodules
are an implementation detail.
"""

from __future__ import annotations

from aimass.schemas._common import (
    ErrorBody,
)
from aimass.schemas._common import (
    ErrorDetail as ErrorDetail,
)
from aimass.schemas._common import (
    Name as Name,
)
from aimass.schemas._common import (
    Ref as Ref,
)
from aimass.schemas._common import (
    _In as _In,
)
from aimass.schemas._common import (
    _Out as _Out,
)
from aimass.schemas.access import (
    AboutOut,
    ApiKeyOut,
    AuditEventOut,
    AuditVerifyOut,
    GarbageCollect,
    GarbageOut,
    GarbageReportOut,
    KeyCreate,
    KeyCreated,
    KeyUpdate,
    ProjectCreate,
    ProjectLimits,
    ProjectOut,
    WhoAmI,
)
from aimass.schemas.access import (
    LimitName as LimitName,
)
from aimass.schemas.access import (
    LimitValue as LimitValue,
)
from aimass.schemas.data import (
    BaseFromModel,
    BaseImport,
    BaseModelOut,
    BaseScratch,
    BaseShrink,
    DatasetImport,
    DatasetUpload,
    DatasetVersionOut,
    PackagedBaseOut,
    SampleImport,
    SampleOut,
    TokenizerTrain,
)
from aimass.schemas.data import (
    DatasetSchemaOut as DatasetSchemaOut,
)
from aimass.schemas.data import (
    DeidentifyIn as DeidentifyIn,
)
from aimass.schemas.data import (
    _ImportFields as _ImportFields,
)
from aimass.schemas.jobs import (
    AuditJobCreate as AuditJobCreate,
)
from aimass.schemas.jobs import (
    BatchPredictJobCreate,
    JobCreate,
    JobLogLineOut,
    JobOut,
    TrainJobCreate,
)
from aimass.schemas.jobs import (
    EvaluateJobCreate as EvaluateJobCreate,
)
from aimass.schemas.jobs import (
    OptimizeJobCreate as OptimizeJobCreate,
)
from aimass.schemas.pipelines import (
    PipelineCreate,
    PipelinePredictResponse,
    PipelineVersionOut,
)
from aimass.schemas.registry import (
    AliasSet,
    AttachmentOut,
    BundleVerifyOut,
    ModelImport,
    ModelVersionOut,
    RegisteredModelOut,
)
from aimass.schemas.registry import (
    LineageOut as LineageOut,
)
from aimass.schemas.serving import (
    GenerateRequest,
    GenerateResponse,
    PredictRequest,
    PredictResponse,
)

__all__ = [
    "AboutOut",
    "AliasSet",
    "ApiKeyOut",
    "AttachmentOut",
    "AuditEventOut",
    "AuditVerifyOut",
    "BaseFromModel",
    "BaseImport",
    "BaseModelOut",
    "BaseScratch",
    "BaseShrink",
    "BatchPredictJobCreate",
    "BundleVerifyOut",
    "DatasetImport",
    "DatasetSchemaOut",
    "DatasetUpload",
    "DatasetVersionOut",
    "ErrorBody",
    "GarbageCollect",
    "GarbageOut",
    "GarbageReportOut",
    "GenerateRequest",
    "GenerateResponse",
    "JobCreate",
    "JobLogLineOut",
    "JobOut",
    "KeyCreate",
    "KeyCreated",
    "KeyUpdate",
    "LineageOut",
    "ModelImport",
    "ModelVersionOut",
    "PackagedBaseOut",
    "PipelineCreate",
    "PipelinePredictResponse",
    "PipelineVersionOut",
    "PredictRequest",
    "PredictResponse",
    "ProjectCreate",
    "ProjectLimits",
    "ProjectOut",
    "RegisteredModelOut",
    "SampleImport",
    "SampleOut",
    "TokenizerTrain",
    "TrainJobCreate",
    "WhoAmI",
]
