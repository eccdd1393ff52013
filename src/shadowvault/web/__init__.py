"""The local web page: server-rendered views over the engine's read API (``shadowvault web``).

``app`` builds the Starlette application (pages, downloads, ``/status.json``) from a
:class:`~shadowvault.web.app.WebSource`; ``guard`` wraps it with the token, host and method
checks; ``chart`` lays out the run chart drawn as SVG. No scripts run in the page: everything is
rendered on the server with Jinja2 (autoescaped), and the Content-Security-Policy forbids scripts.
The page only reads: there is no way to delete, forget or change anything from it, and the
repository password is never part of a page or a request.
"""
