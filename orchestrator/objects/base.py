"""Versioned objects: how Nova lets services of different ages talk to each other.

In a real cloud services are upgraded one at a time, so for a while a new conductor and
an old compute share the bus. Nova therefore sends an *object* over RPC (an ``Instance``
with a name and a ``MAJOR.MINOR`` version) instead of a loose dict, in a fixed wire shape,
the *primitive*::

    {"nova_object.name": "Instance", "nova_object.namespace": "nova",
     "nova_object.version": "1.2", "nova_object.data": {"uuid": ..., "host": ...}}

Rules of the game:

- A minor bump only *adds* fields (``Field.added_in``); a major bump breaks everything, so
  versions of different majors never mix.
- A receiver accepts a primitive up to the newest version it knows (``max_version``). A
  newer one raises :class:`IncompatibleObjectVersion`: the old compute "does not
  understand" the object.
- The old compute then asks the conductor (``object_backport_versions``) to *backport*
  it: the conductor, upgraded first, knows every version, hydrates the object and
  re-serializes it at the older version with :meth:`VersionedObject.obj_make_compatible`,
  which drops the fields the old side has never heard of. That is the sense in which
  "the conductor is an object backporter".

Pure Python, no I/O: every value in a primitive is msgpack-native, so a primitive rides
the bus inside an envelope's ``args`` unchanged.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["NAMESPACE", "Field", "VersionedObject", "IncompatibleObjectVersion",
           "ObjectFieldError", "UnsupportedObjectError", "OBJECTS", "parse_version",
           "is_object_primitive", "register_object", "object_class", "backport"]

NAMESPACE = "nova"
_KEYS = ("name", "namespace", "version", "data")
_PLAIN = (str, int, float, bool, type(None))


def parse_version(text: Any) -> tuple[int, int]:
    """``"1.2"`` -> ``(1, 2)``. Anything but ``MAJOR.MINOR`` in digits is a ValueError."""
    parts = text.split(".") if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"object version must be a 'MAJOR.MINOR' string such as '1.2',"
                         f" not {text!r}")
    return int(parts[0]), int(parts[1])


class IncompatibleObjectVersion(Exception):
    """A version of an object the receiver cannot handle (Nova's name and message)."""

    def __init__(self, objname: str, objver: str, supported: str):
        super().__init__(f"Version {objver} of {objname} is not supported,"
                         f" supported version is {supported}")
        self.objname, self.objver, self.supported = objname, objver, supported


class ObjectFieldError(ValueError):
    """A field that does not exist (at that version) or a value of the wrong type."""


class UnsupportedObjectError(ValueError):
    """An object name that is not in the registry :data:`OBJECTS`."""


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything msgpack would not carry as-is (tuples, sets, bytes, objects)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ObjectFieldError(f"{where} keys must be str, not {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ObjectFieldError(f"{where} must be msgpack-native, not {type(value).__name__}")


@dataclass(frozen=True)
class Field:
    """One field: accepted types (``type(None)`` means nullable) and the version that
    added it."""

    name: str
    added_in: str
    types: tuple[type, ...]
    doc: str = ""

    def __post_init__(self) -> None:
        parse_version(self.added_in)

    def check(self, value: Any, owner: str) -> Any:
        """The value to store, or ObjectFieldError. An int is accepted (as a float) by a
        float field; a bool is never taken for an int."""
        where = f"{owner}.{self.name}"
        if isinstance(value, int) and not isinstance(value, bool) \
                and float in self.types and int not in self.types:
            value = float(value)
        ok = isinstance(value, self.types) and (bool in self.types
                                                or not isinstance(value, bool))
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in self.types)
            raise ObjectFieldError(f"{where} must be {names}, not {type(value).__name__}"
                                   f" ({value!r})")
        _check_plain(value, where)
        return copy.deepcopy(value)


class VersionedObject:
    """Base of every object. Subclasses set ``OBJ_NAME``, ``VERSION`` (the newest),
    ``FIELDS`` and optionally ``VERSION_HISTORY`` (version -> what changed).

    ``cls(**values)`` validates; fields not given stay unset. ``obj.host`` reads a field,
    ``obj.values`` is a copy of all set fields, ``obj.obj_version`` the version the object
    was built at (the primitive's, after :meth:`obj_from_primitive`)."""

    OBJ_NAME: ClassVar[str] = ""
    VERSION: ClassVar[str] = "1.0"
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    VERSION_HISTORY: ClassVar[dict[str, str]] = {}

    def __init__(self, **values: Any):
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "obj_version", self.VERSION)
        for name, value in values.items():
            setattr(self, name, value)

    # -- fields ---------------------------------------------------------------------------
    @classmethod
    def obj_field(cls, name: str) -> Field:
        for field in cls.FIELDS:
            if field.name == name:
                return field
        raise ObjectFieldError(f"{cls.OBJ_NAME} has no field {name!r}")

    @classmethod
    def obj_fields_at(cls, version: str) -> tuple[str, ...]:
        """Names of the fields that exist at ``version``."""
        wanted = parse_version(version)
        return tuple(f.name for f in cls.FIELDS if parse_version(f.added_in) <= wanted)

    def obj_attr_is_set(self, name: str) -> bool:
        self.obj_field(name)
        return name in self._values

    @property
    def values(self) -> dict[str, Any]:
        return copy.deepcopy(self._values)

    def __getattr__(self, name: str) -> Any:  # only called for names not found normally
        if name.startswith("_"):
            raise AttributeError(name)
        self.obj_field(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.OBJ_NAME}.{name} is not set") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = self.obj_field(name).check(value, self.OBJ_NAME)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values == self._values

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{type(self).__name__}[{self.obj_version}]({fields})"

    # -- the wire ------------------------------------------------------------------------
    @classmethod
    def _check_target(cls, version: str, supported: str) -> tuple[int, int]:
        wanted, newest = parse_version(version), parse_version(supported)
        if wanted[0] != newest[0] or wanted[1] > newest[1]:
            raise IncompatibleObjectVersion(cls.OBJ_NAME, version, supported)
        return wanted

    def obj_to_primitive(self, target_version: str | None = None) -> dict[str, Any]:
        """The wire shape at ``target_version`` (default: ``VERSION``), holding the set
        fields that exist at that version."""
        version = target_version or self.VERSION
        self._check_target(version, self.VERSION)
        data = copy.deepcopy(self._values)
        self.obj_make_compatible(data, version)
        return {"nova_object.name": self.OBJ_NAME, "nova_object.namespace": NAMESPACE,
                "nova_object.version": version, "nova_object.data": data}

    def obj_make_compatible(self, data: dict[str, Any], target_version: str) -> None:
        """Make ``data`` (a copy of the values) fit ``target_version``, in place. The base
        drops fields added after it; a subclass may extend this hook (call super) when an
        old version needs a value converted rather than dropped."""
        known = set(self.obj_fields_at(target_version))
        for name in [n for n in data if n not in known]:
            del data[name]

    @classmethod
    def obj_from_primitive(cls, primitive: Any, max_version: str | None = None
                           ) -> VersionedObject:
        """Hydrate a primitive. A version this side cannot read (newer than
        ``max_version``, default ``VERSION``, or of another major) raises
        IncompatibleObjectVersion: time to ask the conductor for a backport."""
        if not is_object_primitive(primitive):
            raise ValueError(f"not an object primitive: {primitive!r}")
        name = primitive["nova_object.name"]
        namespace = primitive["nova_object.namespace"]
        if name != cls.OBJ_NAME or namespace != NAMESPACE:
            raise ValueError(f"expected a {NAMESPACE}.{cls.OBJ_NAME} primitive,"
                             f" got {namespace}.{name}")
        supported = max_version or cls.VERSION
        cls._check_target(supported, cls.VERSION)
        version = primitive["nova_object.version"]
        cls._check_target(version, supported)
        data = primitive["nova_object.data"]
        known = cls.obj_fields_at(version)
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise ObjectFieldError(f"{cls.OBJ_NAME} {version} has no field(s)"
                                   f" {', '.join(map(repr, unknown))}")
        obj = cls(**data)
        object.__setattr__(obj, "obj_version", version)
        return obj


def is_object_primitive(value: Any) -> bool:
    """True for a dict in the wire shape (all four ``nova_object.*`` keys, data a dict)."""
    return (isinstance(value, dict) and all(f"nova_object.{k}" in value for k in _KEYS)
            and isinstance(value["nova_object.data"], dict))


# The registry, filled explicitly by ``orchestrator.objects``: name -> class.
OBJECTS: dict[str, type[VersionedObject]] = {}


def register_object(cls: type[VersionedObject]) -> type[VersionedObject]:
    """Check a class's declarations and add it to :data:`OBJECTS`."""
    newest = parse_version(cls.VERSION)
    names = [f.name for f in cls.FIELDS]
    if not cls.OBJ_NAME or len(set(names)) != len(names):
        raise ValueError(f"{cls.__name__} needs an OBJ_NAME and unique field names")
    late = [f.name for f in cls.FIELDS if parse_version(f.added_in) > newest]
    if late or any(parse_version(v) > newest for v in cls.VERSION_HISTORY):
        raise ValueError(f"{cls.__name__} declares fields/history after {cls.VERSION}")
    if OBJECTS.get(cls.OBJ_NAME, cls) is not cls:
        raise ValueError(f"object name {cls.OBJ_NAME!r} is already registered")
    OBJECTS[cls.OBJ_NAME] = cls
    return cls


def object_class(name: str) -> type[VersionedObject]:
    try:
        return OBJECTS[name]
    except (KeyError, TypeError):
        raise UnsupportedObjectError(f"Unsupported object type {name!r}; known:"
                                     f" {', '.join(sorted(OBJECTS))}") from None


def backport(primitive: dict[str, Any], target_version: str) -> dict[str, Any]:
    """The conductor's ``object_backport_versions`` for one object: hydrate ``primitive``
    (its version must be one this side knows) and re-serialize it at ``target_version``.
    A target at or above the primitive's version returns ``primitive`` itself."""
    if not is_object_primitive(primitive):
        raise ValueError(f"not an object primitive: {primitive!r}")
    cls = object_class(primitive["nova_object.name"])
    version = primitive["nova_object.version"]
    current, target = parse_version(version), parse_version(target_version)
    if current[0] != target[0]:
        raise IncompatibleObjectVersion(cls.OBJ_NAME, target_version, version)
    if target >= current:
        return primitive
    return cls.obj_from_primitive(primitive).obj_to_primitive(target_version)
