"""The M2M Cockpit web console: server-rendered pages where an account holder manages a fleet.

Mounted under ``/console`` by ``m2m.asgi.create_app``. Routes are thin (``m2m.console.pages``);
sessions, CSRF, login throttling and charts each have their module; SQL lives in ``m2m.storage``.
"""
