-- Account hardening (issue 14).

-- A disabled account cannot log in and its sessions are revoked; an account registered
-- under JOBRUNNER_REGISTRATION=approval starts disabled until an admin enables it.
ALTER TABLE jobrunner.users ADD COLUMN disabled_at timestamptz;

-- `Alice` and `alice` are one name: a second account differing only in case could pass for
-- the first. Logins still match the name exactly as registered.
CREATE UNIQUE INDEX users_username_lower_key ON jobrunner.users (lower(username));

-- The refresh token that replaced this one: within a short grace after the rotation, the
-- same old token (two browser tabs refreshing at once) gets the same new pair back instead
-- of revoking the session.
ALTER TABLE jobrunner.refresh_tokens ADD COLUMN successor_jti uuid;
