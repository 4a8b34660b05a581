"""The web page: server-rendered HTML (Jinja2 templates) and its static assets.

Pure rendering: no FastAPI here (the routes are api/routers/pages.py). docs/web.md
"""
