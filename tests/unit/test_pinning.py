"""Unit tests for orchestrator.objects.pinning: what a sender puts on the wire with and
without ``object_pinning`` (a real Database for the services table)."""
from __future__ import annotations

import pytest

from orchestrator.config import LabConfig
from orchestrator.db import Database
from orchestrator.objects.pinning import (instance_primitive, migration_context,
                                          pinned_version, usable_version)


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path)
    for host, version in (("compute1", "1.2"), ("compute2", "1.0"), ("compute3", "1.1")):
        db.service_update("compute", host, "compute", version)
    _, _, [uuid] = db.create_instances(["vm"], "m1.small", "cirros", None)
    db.update_instance(uuid, host="compute1", vm_state="active", task_state=None)
    yield db
    db.close()


def row(db):
    return db.instances()[0]


@pytest.mark.parametrize("version, ok", [("1.0", True), ("1.2", True), ("1.3", False),
                                         ("2.0", False), ("abc", False), (None, False),
                                         (1.0, False)])
def test_usable_versions_are_the_ones_we_can_send(version, ok):
    assert usable_version(version) is ok


def test_without_pinning_the_newest_version_goes_to_everyone(db):
    p = instance_primitive(db, LabConfig(), row(db), ["compute2"])
    assert p["nova_object.version"] == "1.2"


@pytest.mark.parametrize("hosts, version", [(["compute1"], "1.2"), (["compute2"], "1.0"),
                                            (["compute1", "compute3"], "1.1"),
                                            (["compute3", "compute2"], "1.0"),
                                            (["compute9"], "1.2"), ([None], "1.2")])
def test_with_pinning_the_oldest_reader_decides(db, hosts, version):
    p = instance_primitive(db, LabConfig(object_pinning=True), row(db), hosts)
    assert p["nova_object.version"] == version


def test_an_unusable_reported_version_is_ignored_not_fatal(db):
    db.conn.execute("UPDATE services SET object_version='9.9' WHERE host='compute2'")
    assert pinned_version(db, "compute2") is None
    p = instance_primitive(db, LabConfig(object_pinning=True), row(db), ["compute2"])
    assert p["nova_object.version"] == "1.2"     # the compute can still ask for a backport


def test_the_migration_context_travels_only_in_versions_that_have_it(db):
    m = db.create_migration(row(db)["uuid"], "resize", "compute1", "m1.small",
                            "m1.medium", "r")
    m = db.update_migration(m["id"], dest_compute="compute3")
    assert migration_context(m) == {"migration_id": m["id"], "source_compute": "compute1",
                                    "dest_compute": "compute3", "old_flavor": "m1.small",
                                    "new_flavor": "m1.medium"}
    new = instance_primitive(db, LabConfig(), row(db), ["compute3"], m)
    assert new["nova_object.data"]["migration_context"]["dest_compute"] == "compute3"
    old = instance_primitive(db, LabConfig(object_pinning=True), row(db),
                             ["compute1", "compute3"], m)
    assert "migration_context" not in old["nova_object.data"]
