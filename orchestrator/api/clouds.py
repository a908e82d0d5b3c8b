"""The lab's ``clouds.yaml``: how the real ``openstack`` command and openstacksdk find it.

The API writes it into the run directory each time it starts (a restarted API that had
to take a new port rewrites it), before it says where it listens, so the file is there
once the lab has started. It names the one cloud ``conductor-lab``, with the endpoint of
each service the API serves on its port (compute, image, and identity's discovery:
``versions``), and the lab's secret as keystoneauth's ``admin_token``: the token sent as
``X-Auth-Token`` with no identity service to ask for one. It is written atomically and
is its owner's alone (0600): it holds the secret.

    export OS_CLIENT_CONFIG_FILE=RUN_DIR/clouds.yaml OS_CLOUD=conductor-lab
    openstack server list

A lab made without a secret gets ``auth_type: none`` and the compute endpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["CLOUDS_YAML", "CLOUD", "clouds_yaml", "write"]

CLOUDS_YAML = "clouds.yaml"
CLOUD = "conductor-lab"
# What a client says when a command needs a service the lab does not have.
NO_NETWORK = "The lab has no networks (no Neutron): use --no-network, --compute."
NO_VOLUMES = "The lab has no volumes (no Cinder): ask for --compute only."


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's)."""
    return json.dumps(text)


def clouds_yaml(url: str, secret: str | None) -> str:
    """The file's text for an API at ``url`` (``http://127.0.0.1:PORT``)."""
    compute = f"{url}/v2.1"
    if secret:
        auth = (f"    auth_type: admin_token\n    auth:\n      endpoint: {_quoted(compute)}\n"
                f"      token: {_quoted(secret)}\n")
    else:
        auth = f"    auth_type: none\n    auth:\n      endpoint: {_quoted(compute)}\n"
    return (
        "# The lab's cloud, for the `openstack` command and openstacksdk; written by its\n"
        "# API when it starts. Use it with:\n"
        f"#   export OS_CLIENT_CONFIG_FILE=<this file> OS_CLOUD={CLOUD}\n"
        "# (python -m lab env prints those). It holds the lab's secret: yours alone.\n"
        f"clouds:\n  {CLOUD}:\n{auth}"
        "    region_name: RegionOne\n"
        f"    compute_api_version: \"2\"\n"
        f"    compute_endpoint_override: {_quoted(compute)}\n"
        f"    image_api_version: \"2\"\n"
        f"    image_endpoint_override: {_quoted(url + '/image')}\n"
        f"    identity_api_version: \"3\"\n"
        f"    identity_endpoint_override: {_quoted(url + '/identity/v3')}\n"
        "    # the lab has no networks and no volumes: the clients need not look\n"
        "    has_network: false\n"
        f"    network_disabled_reason: {_quoted(NO_NETWORK)}\n"
        "    has_block_storage: false\n"
        f"    block_storage_disabled_reason: {_quoted(NO_VOLUMES)}\n")


def write(run_dir: str | os.PathLike, url: str, secret: str | None) -> Path:
    """Write ``RUN_DIR/clouds.yaml`` (0600, by an atomic rename); its path."""
    run_dir = Path(run_dir)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{CLOUDS_YAML}.")   # 0600
    with os.fdopen(fd, "w") as f:
        f.write(clouds_yaml(url, secret))
    path = run_dir / CLOUDS_YAML
    os.replace(tmp, path)
    return path
