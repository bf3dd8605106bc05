"""`jobrunner`: every command a user runs. Each one is `asyncio.run` over library calls.

parser.py   the commands, their flags and help, and `main`
common.py   settings from flags, output, and the database a command uses
locate.py   which database that is, from whatever directory the command runs in
serving.py  migrate, worker, api, up
jobs.py     enqueue, jobs ls|show|cancel|retry
queues.py   queues ls|pause|resume|set|grant|revoke
admin.py    users create|list|disable|enable|delete|max-priority, doctor

Operator tooling the commands use:
doctor.py   the checks of `jobrunner doctor`
console.py  how commands print jobs and errors (JSON on stdout, messages on stderr)
embedded.py the private PostgreSQL `jobrunner up` starts when no database URL is given
"""

from jobrunner.cli.common import database, database_url
from jobrunner.cli.parser import build_parser, main

__all__ = ["build_parser", "database", "database_url", "main"]
