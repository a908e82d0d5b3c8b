"""The scheduler: picks a compute for each instance (filters, then weighers). In the
conductor flow it only answers ``select_destinations`` calls and never talks to a
compute; in the legacy flow it casts the build to the compute itself."""
