"""The system under study: Nova-shaped api, conductor, scheduler and compute services
that talk over a ZeroMQ message bus. Imports nothing from ``lab``, bokeh or ipywidgets."""
