-- Tracing (issue 16, item 6): the trace a job was made in, so the attempts that run it and
-- the webhook delivery that reports it join that trace (jobrunner/tracing.py).
--
-- The carrier the configured OpenTelemetry propagators write (W3C trace context by default:
-- {"traceparent": "00-<trace id>-<span id>-01"}, with "tracestate" when the caller has one).
-- jsonb rather than a traceparent column: whatever propagators a deployment chooses (b3,
-- baggage) ride along unchanged. NULL when the job was made outside a trace, or the `otel`
-- extra is not installed: a NULL at the end of a row costs a bit in its null bitmap.
-- Nullable with no default, so adding it rewrites nothing and locks the table for moments.
ALTER TABLE jobrunner.jobs ADD COLUMN trace_context jsonb;

COMMENT ON COLUMN jobrunner.jobs.trace_context IS
    'The OpenTelemetry context the job was made in (its propagators'' carrier); NULL: none.';
