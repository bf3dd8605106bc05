"""Structured logging: JSON lines when not on a terminal, readable colours when on one."""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info
        if as_json
        else structlog.processors.StackInfoRenderer(),
    ]
    _route_standard_logging(shared, renderer, _LEVELS[level])
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        # Calls below the level cost almost nothing: the worker logs every outcome at info.
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _route_standard_logging(
    shared: list[structlog.typing.Processor],
    renderer: structlog.typing.Processor,
    level: int,
) -> None:
    """Libraries that log through `logging` (asyncpg's pool, for one) come out in the same
    format: one JSON line each, not a bare traceback in the middle of a JSON stream."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # httpx logs every request at info, URL included: webhook URLs can carry their
    # receiver's token, and the delivery task logs its own outcome anyway.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
