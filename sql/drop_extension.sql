--
-- drop_extension: DROP EXTENSION removes every trigger it made, and only
-- those; the staging tables keep their rows and stay writable
--
CREATE TABLE line_a (id int PRIMARY KEY, v text);
CREATE TABLE line_b (id int PRIMARY KEY, v text);
CREATE FUNCTION own_trigger() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER own_trigger BEFORE INSERT ON line_a
    FOR EACH ROW EXECUTE FUNCTION own_trigger();
SELECT mfgsync.track('line_a', 'LineA');
SELECT mfgsync.track('line_b', 'LineB');
INSERT INTO line_a VALUES (1, 'x');
SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'mfgsync%';

DROP EXTENSION mfgsync;

SELECT tgrelid::regclass, tgname FROM pg_trigger
 WHERE tgrelid IN ('line_a'::regclass, 'line_b'::regclass) ORDER BY 1, 2;
-- the schema named in the control file stays, empty, as PostgreSQL leaves it
SELECT count(*) AS objects_left FROM pg_class
 WHERE relnamespace = 'mfgsync'::regnamespace;
SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'mfgsync%';
INSERT INTO line_a VALUES (2, 'y');
TRUNCATE line_b;
SELECT * FROM line_a ORDER BY id;

-- and it can be created again
CREATE EXTENSION mfgsync;
SELECT count(*) FROM mfgsync.tracked;
DROP TABLE line_a, line_b;
DROP FUNCTION own_trigger();
