"""The compute service: builds instances on a simulated hypervisor with real resource
accounting. It holds no database handle: every save goes through the conductor."""
