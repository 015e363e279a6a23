-- 0002_submit.sql - support for all-or-nothing job batches.
--
-- POST /v1/jobs/batch inserts up to 1000 jobs with one statement.  Problems
-- only the database can see (a `depends_on` parent that does not exist, an
-- idempotency key already used with another body) must abort the whole
-- statement so that nothing is written.  SQL has no RAISE, so the statement
-- calls this function, whose error carries a machine-readable message
-- ("tf_batch:<index>:<problem>:<detail>") that the server turns into a 422
-- or 409 naming the job's index.
CREATE FUNCTION tf_abort(message text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'P0001';
END
$$;
