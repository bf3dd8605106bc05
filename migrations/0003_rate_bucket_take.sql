-- Taking a token from a rate bucket, defined once: the login and submit limits take one on
-- its own (rate_bucket_take), a submission takes one in the same statement that checks its
-- session (session_principal_take). The bucket holds at most `burst` tokens and refills
-- `per_second`; the tokens left come back, or NULL when the bucket is empty.
CREATE FUNCTION jobrunner.rate_bucket_take(bucket text, per_second float8, burst float8)
RETURNS float8 LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    left_over float8;
BEGIN
    INSERT INTO jobrunner.rate_buckets AS b (key, tokens, updated_at)
    VALUES (bucket, burst - 1, now())
    ON CONFLICT (key) DO UPDATE
    SET tokens = least(burst,
                       b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * per_second) - 1,
        updated_at = now()
    WHERE least(burst,
                b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * per_second) >= 1
    RETURNING tokens INTO left_over;
    RETURN left_over;
END
$$;
