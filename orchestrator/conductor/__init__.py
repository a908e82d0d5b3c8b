"""The conductor: the workflow owner (``build_instances``: call the scheduler, cast the
compute, reschedule up to ``max_attempts``) and the database proxy for computes."""
