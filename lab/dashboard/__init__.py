"""The live dashboard: a Bokeh server app that animates the lab's message traffic.

``model`` turns trace events and polled records into column data (pure, no Bokeh);
``server``/``app`` serve it; ``animate`` is the browser-side loop. Importing this package
imports nothing heavy: Bokeh is loaded only by the modules that draw.
"""
