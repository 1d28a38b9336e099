--
-- guc: every mfgsync.* setting, and the reserved prefix
--
SELECT name, setting, unit, context, vartype, min_val, max_val
  FROM pg_settings WHERE name LIKE 'mfgsync.%' ORDER BY name;

-- postmaster and sighup settings cannot be changed in a session
SET mfgsync.database = 'other';
SET mfgsync.max_workers = 2;
SET mfgsync.batch_size = 10;
SET mfgsync.http_client = 'libcurl';

-- a superuser may shorten mfgsync.retention for a retire() by hand
SET mfgsync.retention = '1h';
SHOW mfgsync.retention;
RESET mfgsync.retention;

-- a misspelt setting under the reserved prefix is an error, not a placeholder
SET mfgsync.batchsize = 10;
