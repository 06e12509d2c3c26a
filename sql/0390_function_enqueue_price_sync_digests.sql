-- Notifications: one error digest per restaurant (notify_on_error) per interval, listing the
-- changes that failed, were dead-lettered or were held by the guardrails since its previous digest. dedupe_key makes a
-- second call in the same interval a no-op.
create function loyverse.enqueue_price_sync_digests(p_interval interval default '1 hour')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_bucket timestamptz := date_bin(p_interval, now(), timestamptz '2000-01-01 00:00+00');
begin
    with due as (
        select s.restaurant_id, r.name, s.notification_email,
               coalesce((select max(o.created_at) from loyverse.loyverse_notification_outbox o
                          where o.restaurant_id = s.restaurant_id and o.kind = 'ERROR_DIGEST'),
                        '-infinity') as since
          from loyverse.loyverse_price_sync_settings s
          join public.restaurants r on r.id = s.restaurant_id
         where s.notify_on_error and s.notification_email is not null
    ), failures as (
        select d.restaurant_id, d.name, d.notification_email,
               count(*) as n,
               count(*) filter (where q.status = 'dead') as dead,
               count(*) filter (where q.status = 'held') as held,
               jsonb_agg(jsonb_build_object('queue_id', q.id, 'product_id', q.product_id, 'product', p.name,
                                            'status', q.status, 'price', q.price_to_send,
                                            'code', q.last_error_code, 'error', q.last_error)
                         order by q.id) as rows,
               string_agg(format('- %s (%s): %s -> %s, %s%s', p.name, q.status, q.old_price, q.price_to_send,
                                 coalesce(q.last_error_code || ': ', ''), coalesce(q.last_error, '')),
                          E'\n' order by q.id) as lines
          from due d
          join loyverse.loyverse_price_sync_queue q on q.restaurant_id = d.restaurant_id
          join public.products p on p.id = q.product_id
         where (q.status in ('failed', 'dead') and q.completed_at > d.since)
            or (q.status = 'held' and q.updated_at > d.since)
         group by d.restaurant_id, d.name, d.notification_email
    ), inserted as (
        insert into loyverse.loyverse_notification_outbox (restaurant_id, kind, recipient, subject, body, payload, dedupe_key)
        select f.restaurant_id, 'ERROR_DIGEST', f.notification_email,
               format('[loyverse-sync] %s: %s price change(s) not synced to Loyverse', f.name, f.n),
               format(E'%s price change(s) of %s could not be written to Loyverse (%s dead-lettered, %s held '
                      'for approval).\n\n%s\n\nRetry with: loyverse-sync sync retry --restaurant %s\n'
                      'Held changes: loyverse-sync sync approve --restaurant %s (or sync reject)\n',
                      f.n, f.name, f.dead, f.held, f.lines, f.restaurant_id, f.restaurant_id),
               jsonb_build_object('restaurant_id', f.restaurant_id, 'failures', f.rows),
               format('price-sync-digest:%s:%s', f.restaurant_id, to_char(v_bucket at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI'))
          from failures f
        on conflict (dedupe_key) do nothing
        returning 1
    )
    select count(*) into v_count from inserted;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_price_sync_digests(interval) is
    'Queue one ERROR_DIGEST email per restaurant with notify_on_error and new failed/dead/held changes, at most '
    'one per p_interval (dedupe_key). Returns the digests queued.';
