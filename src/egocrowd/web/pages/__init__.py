"""Server-rendered pages (Jinja2), mobile-first, one module per subject. Forms post back here with a
CSRF token; the decisions are the same service calls the API makes. Shared helpers: :mod:`.render`."""
