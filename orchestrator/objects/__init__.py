"""Nova-style versioned objects (see :mod:`orchestrator.objects.base` for the idea) and
the registry of the lab's objects, filled here, explicitly."""
from __future__ import annotations

from orchestrator.objects.base import (
    NAMESPACE, OBJECTS, Field, IncompatibleObjectVersion, ObjectFieldError,
    UnsupportedObjectError, VersionedObject, backport, is_object_primitive, object_class,
    parse_version, register_object,
)
from orchestrator.objects.instance import Instance

__all__ = ["NAMESPACE", "OBJECTS", "Field", "IncompatibleObjectVersion", "ObjectFieldError",
           "UnsupportedObjectError", "VersionedObject", "backport", "is_object_primitive",
           "object_class", "parse_version", "register_object", "Instance"]

register_object(Instance)
