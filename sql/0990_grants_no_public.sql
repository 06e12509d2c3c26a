-- Nothing of ours is executable by PUBLIC: every function of the schema is revoked from it
-- here, after all of them exist, and each role gets what docs/dba.md's privilege matrix lists
-- (tests/sql/test_privileges.py holds the database to that table). PostgreSQL grants EXECUTE
-- to PUBLIC on every new function by default, so the default is turned off for functions
-- this role creates from now on (a per-schema default can only add, not revoke), and put back
-- for the schema public, where procrastinate's functions (a future upgrade's too) keep it.
revoke execute on all functions in schema loyverse from public;
alter default privileges revoke execute on functions from public;
alter default privileges in schema public grant execute on functions to public;

-- The views call these (a view's functions run with the reader's privileges).
grant execute on function loyverse._latency_quantile(bigint[], double precision), loyverse.sum_buckets(bigint[]),
    loyverse._sum_buckets(bigint[], bigint[]), loyverse.latency_bounds()
  to loyverse_readonly, loyverse_worker;
