-- Taking several tokens at once: an API process serving a user whose submit limits allow 20
-- or more a second takes a few at a time and spends them over the next second, so the bucket
-- row is written once per few submissions, not once each (jobrunner/api/limits.py,
-- SubmitTokensAhead).
-- Takes min(want, whole tokens available) and returns how many; 0 leaves the bucket as it is.
CREATE FUNCTION jobrunner.rate_bucket_take_upto(bucket text, per_second float8, burst float8,
                                                want integer)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    available float8;
    granted integer;
BEGIN
    IF want <= 1 THEN  -- the usual case: one upsert
        RETURN CASE WHEN jobrunner.rate_bucket_take(bucket, per_second, burst) IS NULL
                    THEN 0 ELSE 1 END;
    END IF;
    INSERT INTO jobrunner.rate_buckets (key, tokens, updated_at) VALUES (bucket, burst, now())
    ON CONFLICT (key) DO NOTHING;
    SELECT least(burst, b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * per_second)
    INTO available
    FROM jobrunner.rate_buckets AS b WHERE b.key = bucket
    FOR UPDATE;
    granted := least(want, floor(available))::integer;
    IF granted < 1 THEN
        RETURN 0;
    END IF;
    UPDATE jobrunner.rate_buckets SET tokens = available - granted, updated_at = now()
    WHERE key = bucket;
    RETURN granted;
END
$$;
