"""The conductor's workflow tasks (one module each, over ``base.Task``: a database
handle, the scheduler's and computes' RPC clients, the config): ``build`` (also run
in-process by the API with ``local_mode``), ``migrate`` (resize / cold migrate) and
``rebuild`` (rebuild / evacuate)."""
