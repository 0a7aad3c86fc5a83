"""The one web server: dashboard pages, CSV/JSON downloads, login, live updates, ``/healthz``, webhooks."""
