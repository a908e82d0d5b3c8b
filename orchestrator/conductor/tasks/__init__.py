"""The conductor's workflow tasks. The build task is plain code over a database handle and
two RPC clients, so the API can run it in-process (``local_mode``)."""
