"""The dashboard: server-rendered pages over the same library calls as the API.

routes.py    the /dashboard routes: login, overview, job pages, submit, cancel, retry
queue_pages.py  /dashboard/queues: controls and counts; pause, resume and limits (admins)
html.py      the HTML of each page part (escaped here; templates/ holds the page frames)
templates/   login.html and page.html (string.Template)
static/      dashboard.css and dashboard.js (no inline script: the CSP forbids it)
"""
