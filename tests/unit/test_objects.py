"""Unit tests for orchestrator.objects: versions, primitives, backports, the registry."""
from __future__ import annotations

import msgpack
import pytest

from orchestrator.config import FLAVORS
from orchestrator.messaging import protocol
from orchestrator.objects import (
    OBJECTS, IncompatibleObjectVersion, Instance, ObjectFieldError, UnsupportedObjectError,
    VersionedObject, backport, is_object_primitive, object_class, parse_version,
)

V10 = {"uuid": "u-1", "name": "vm1", "image_ref": "cirros", "flavor": "m1.small",
       "vcpus": 1, "memory_mb": 2048, "root_gb": 20, "host": "compute1",
       "vm_state": "active", "task_state": None}
V11 = {"availability_zone": "az1", "launched_at": 1700000000.5}
MIGRATION = {"migration_id": 7, "source_compute": "compute1", "dest_compute": "compute2",
             "old_flavor": "m1.small", "new_flavor": "m1.large"}
ALL = {**V10, **V11, "migration_context": MIGRATION}


def _instance() -> Instance:
    return Instance(**ALL)


def test_parse_version():
    assert parse_version("1.2") == (1, 2)
    assert parse_version("10.0") == (10, 0)


@pytest.mark.parametrize("text", [1.2, None, "1", "1.x", "-1.0", "1.2.3", "", "1.", " 1.2",
                                  "١.٢"])
def test_parse_version_refuses(text):
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        parse_version(text)


@pytest.mark.parametrize("version, keys", [
    ("1.0", set(V10)), ("1.1", set(V10) | set(V11)), ("1.2", set(ALL)), (None, set(ALL))])
def test_round_trip_at_each_version(version, keys):
    primitive = _instance().obj_to_primitive(version)
    assert primitive["nova_object.name"] == "Instance"
    assert primitive["nova_object.namespace"] == "nova"
    assert primitive["nova_object.version"] == (version or "1.2")
    assert set(primitive["nova_object.data"]) == keys
    back = Instance.obj_from_primitive(primitive)
    assert back.obj_version == (version or "1.2")
    assert back.values == {k: ALL[k] for k in keys}


def test_unset_fields_stay_unset():
    inst = Instance(uuid="u-2", name="vm2")
    assert inst.obj_attr_is_set("uuid") and not inst.obj_attr_is_set("host")
    with pytest.raises(AttributeError, match="host is not set"):
        inst.host  # noqa: B018
    assert inst.obj_to_primitive()["nova_object.data"] == {"uuid": "u-2", "name": "vm2"}


def test_values_is_a_copy_and_primitive_does_not_alias():
    inst = _instance()
    inst.values["migration_context"]["dest_compute"] = "elsewhere"
    inst.obj_to_primitive()["nova_object.data"]["migration_context"]["migration_id"] = 0
    assert inst.migration_context == MIGRATION
    assert inst.host == "compute1" and inst.vcpus == 1


def test_backport_to_1_0_drops_exactly_the_newer_fields():
    result = backport(_instance().obj_to_primitive(), "1.0")
    assert result["nova_object.version"] == "1.0"
    assert result["nova_object.data"] == V10
    assert set(ALL) - set(result["nova_object.data"]) == {
        "migration_context", "availability_zone", "launched_at"}
    assert Instance.obj_from_primitive(result, max_version="1.0").values == V10


def test_backport_to_1_1_keeps_zone_and_launch_time():
    result = backport(_instance().obj_to_primitive(), "1.1")
    assert result["nova_object.version"] == "1.1"
    assert result["nova_object.data"] == {**V10, **V11}


def test_backport_from_an_intermediate_version():
    result = backport(_instance().obj_to_primitive("1.1"), "1.0")
    assert result["nova_object.data"] == V10


@pytest.mark.parametrize("target", ["1.2", "1.5"])
def test_backport_to_same_or_newer_is_a_no_op(target):
    primitive = _instance().obj_to_primitive()
    before = msgpack.unpackb(msgpack.packb(primitive))
    assert backport(primitive, target) is primitive
    assert primitive == before


def test_backport_refuses_other_major_and_unknown_objects():
    with pytest.raises(IncompatibleObjectVersion):
        backport(_instance().obj_to_primitive(), "2.0")
    alien = {**_instance().obj_to_primitive(), "nova_object.name": "Flavor"}
    with pytest.raises(UnsupportedObjectError, match="Flavor"):
        backport(alien, "1.0")
    future = {**_instance().obj_to_primitive(), "nova_object.version": "1.9"}
    with pytest.raises(IncompatibleObjectVersion, match="Version 1.9 of Instance"):
        backport(future, "1.0")


def test_old_compute_does_not_understand_a_newer_instance():
    primitive = _instance().obj_to_primitive()
    with pytest.raises(IncompatibleObjectVersion) as info:
        Instance.obj_from_primitive(primitive, max_version="1.0")
    err = info.value
    assert (err.objname, err.objver, err.supported) == ("Instance", "1.2", "1.0")
    assert str(err) == "Version 1.2 of Instance is not supported, supported version is 1.0"


@pytest.mark.parametrize("version, max_version", [("2.0", None), ("0.9", None),
                                                  ("1.1", "1.0"), ("1.3", None)])
def test_from_primitive_refuses_versions(version, max_version):
    primitive = {**_instance().obj_to_primitive("1.0"), "nova_object.version": version}
    with pytest.raises(IncompatibleObjectVersion):
        Instance.obj_from_primitive(primitive, max_version=max_version)


@pytest.mark.parametrize("target", ["2.0", "0.1", "1.3"])
def test_to_primitive_refuses_targets_it_cannot_make(target):
    with pytest.raises(IncompatibleObjectVersion, match=f"Version {target} of Instance"):
        _instance().obj_to_primitive(target)


@pytest.mark.parametrize("version", ["1", "one.two", 1.2, None])
def test_from_primitive_refuses_bad_version_strings(version):
    primitive = {**_instance().obj_to_primitive(), "nova_object.version": version}
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        Instance.obj_from_primitive(primitive)


@pytest.mark.parametrize("key, value", [("nova_object.name", "Flavor"),
                                        ("nova_object.namespace", "neutron")])
def test_from_primitive_refuses_wrong_name_or_namespace(key, value):
    primitive = {**_instance().obj_to_primitive(), key: value}
    with pytest.raises(ValueError, match="expected a nova.Instance primitive"):
        Instance.obj_from_primitive(primitive)


@pytest.mark.parametrize("version, data", [
    ("1.2", {**V10, "colour": "red"}),
    ("1.0", {**V10, "migration_context": None}),   # a field from a later version
])
def test_from_primitive_refuses_unknown_fields(version, data):
    primitive = {"nova_object.name": "Instance", "nova_object.namespace": "nova",
                 "nova_object.version": version, "nova_object.data": data}
    with pytest.raises(ObjectFieldError, match="no field"):
        Instance.obj_from_primitive(primitive)


@pytest.mark.parametrize("field, value", [
    ("vcpus", "2"), ("vcpus", True), ("vcpus", 2.0), ("name", None), ("host", 3),
    ("launched_at", "now"), ("migration_context", [1]), ("migration_context", {1: "x"}),
    ("migration_context", {"old_flavor": ("m1", "tiny")}), ("uuid", b"u-1")])
def test_bad_field_values_are_refused(field, value):
    with pytest.raises(ObjectFieldError, match=field):
        Instance(**{**ALL, field: value})


def test_unknown_field_and_nullable_fields():
    with pytest.raises(ObjectFieldError, match="'colour'"):
        Instance(colour="red")
    with pytest.raises(ObjectFieldError, match="'colour'"):
        _instance().colour = "red"
    inst = Instance(host=None, task_state=None, migration_context=None, launched_at=5)
    assert inst.launched_at == 5.0 and isinstance(inst.launched_at, float)
    assert inst.host is None


def test_from_db_with_a_real_looking_row():
    row = {"uuid": "2f0e-uuid", "seq": 1, "name": "vm1", "flavor": "m1.medium",
           "image": "cirros", "vm_state": "building", "task_state": "spawning",
           "host": "compute2", "availability_zone": "nova", "request_id": "req-1",
           "reservation_id": "r-1", "num_attempts": 1, "created_at": 1.0,
           "updated_at": 2.0, "launched_at": None, "deleted": 0}
    inst = Instance.from_db(row, migration_context=MIGRATION)
    assert inst.image_ref == "cirros" and inst.flavor == "m1.medium"
    assert (inst.vcpus, inst.memory_mb, inst.root_gb) == (
        FLAVORS["m1.medium"]["vcpus"], FLAVORS["m1.medium"]["memory_mb"],
        FLAVORS["m1.medium"]["root_gb"])
    assert inst.host == "compute2" and inst.task_state == "spawning"
    assert inst.migration_context == MIGRATION and inst.launched_at is None
    assert inst.summary() == ("Instance 1.2 vm1 on compute2 (building/spawning),"
                              " migrating compute1 -> compute2")
    with pytest.raises(ObjectFieldError, match="unknown flavor"):
        Instance.from_db({**row, "flavor": "m9.huge"})


def test_summary():
    assert Instance(**{**V10, "host": "compute1"}).summary() == \
        "Instance 1.2 vm1 on compute1 (active)"
    old = Instance.obj_from_primitive(backport(_instance().obj_to_primitive(), "1.0"),
                                      max_version="1.0")
    assert old.summary() == "Instance 1.0 vm1 on compute1 (active)"


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_primitive_crosses_the_wire_unchanged(version):
    primitive = _instance().obj_to_primitive(version)
    env = protocol.envelope("call", "compute.compute1", "conductor",
                            "object_backport_versions", args={"objinst": primitive})
    assert protocol.decode(protocol.encode(env))["args"]["objinst"] == primitive
    assert msgpack.unpackb(msgpack.packb(primitive)) == primitive


def test_is_object_primitive():
    assert is_object_primitive(_instance().obj_to_primitive())
    assert not is_object_primitive(ALL)
    assert not is_object_primitive({"nova_object.name": "Instance"})
    assert not is_object_primitive(None)


def test_registry():
    assert OBJECTS["Instance"] is Instance and object_class("Instance") is Instance
    with pytest.raises(UnsupportedObjectError, match="Unsupported object type 'Nope'"):
        object_class("Nope")
    assert issubclass(Instance, VersionedObject)
    assert set(Instance.VERSION_HISTORY) == {"1.0", "1.1", "1.2"}
    assert Instance.obj_fields_at("1.0") == tuple(V10)
