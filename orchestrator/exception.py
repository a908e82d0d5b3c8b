"""The errors of the cloud, named as Nova names them; their type names travel over the bus
in ``RemoteError`` and end up in instance faults, so students meet Nova's vocabulary."""
from __future__ import annotations

__all__ = ["NovaError", "NoValidHost", "MaxRetriesExceeded", "RescheduledException",
           "BuildAbortException", "ComputeResourcesUnavailable", "InstanceNotFound",
           "BuildTimeout", "MigrationError", "ResizeError", "MigrationTimeout",
           "RebuildError"]


class NovaError(Exception):
    code = 500


class NoValidHost(NovaError):
    """The scheduler found no host that passes every filter."""


class MaxRetriesExceeded(NoValidHost):
    """Every attempt allowed by ``max_attempts`` failed."""


class RescheduledException(NovaError):
    """A build failed in a way another host may not: try elsewhere."""


class BuildAbortException(NovaError):
    """A build failed in a way no other host can fix: stop."""


class ComputeResourcesUnavailable(RescheduledException):
    """The compute's resource claim failed (it was fuller than the scheduler thought)."""


class InstanceNotFound(NovaError):
    code = 404


class BuildTimeout(NovaError):
    """The build made no progress for ``build_timeout`` seconds (a lost message, a
    crashed compute): Nova's ``instance_build_timeout``."""


class MigrationError(NovaError):
    """A resize or migration failed after its destination was prepared."""


class ResizeError(MigrationError):
    """A step of a resize failed on a compute after the destination was prepared (Nova's
    ``ResizeError``): nothing reschedules it, the instance is half-moved."""


class MigrationTimeout(MigrationError):
    """A migration made no progress for ``build_timeout`` seconds (a lost cast)."""


class RebuildError(NovaError):
    """A rebuild or evacuation could not finish on its host."""


class Conflict(Exception):
    """HTTP 409: the request conflicts with the instance's state (the API answers it)."""
