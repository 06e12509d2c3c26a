-- Queue health per account: backlog, leases, and the procrastinate jobs that drain it.
create view loyverse.price_sync_queue_health as
select a.id as account_id,
       a.name as account_name,
       coalesce(q.pending, 0) as pending,
       coalesce(q.due, 0) as due,
       coalesce(q.processing, 0) as processing,
       coalesce(q.expired_leases, 0) as expired_leases,
       coalesce(q.retrying, 0) as retrying,
       now() - q.oldest_due as oldest_due_age,
       (select count(*) from public.procrastinate_jobs j
         where j.queueing_lock = 'loyverse_price_sync:' || a.id and j.status = 'todo') as jobs_queued,
       (select count(*) from public.procrastinate_jobs j
         where j.lock = 'loyverse_price_sync:' || a.id and j.status = 'doing') as jobs_running,
       st.throttled_until,
       st.rate_limited_total
  from loyverse.loyverse_accounts a
  left join loyverse.loyverse_account_rate_state st on st.account_id = a.id
  left join lateral (
      select count(*) filter (where x.status = 'pending') as pending,
             count(*) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as due,
             count(*) filter (where x.status = 'processing') as processing,
             count(*) filter (where x.status = 'processing' and x.lease_until < now()) as expired_leases,
             count(*) filter (where x.status = 'pending' and x.attempts > 0) as retrying,
             min(x.next_attempt_at) filter (where x.status = 'pending' and x.next_attempt_at <= now()) as oldest_due
        from loyverse.loyverse_price_sync_queue x
       where x.account_id = a.id and x.status in ('pending', 'processing')
  ) q on true;
comment on view loyverse.price_sync_queue_health is
    'Per account: pending / due / processing rows, expired leases (a worker died; the next claim or sweep '
    'frees them), rows retrying, age of the oldest due row, queued and running sync jobs, 429 state.';
