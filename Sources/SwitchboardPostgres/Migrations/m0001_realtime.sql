-- Migration 1: Supabase's Broadcast-from-Database API (realtime.messages, realtime.send,
-- realtime.broadcast_changes, realtime.topic) with Supabase's names and signatures, so that
-- triggers written for Supabase run unchanged; and Switchboard's partition upkeep.
-- Idempotent: every statement can run again on a database that already has it.

create schema if not exists realtime;

create table if not exists realtime.messages (
    topic text not null,
    extension text not null,
    payload jsonb,
    event text,
    private boolean default false,
    updated_at timestamp without time zone not null default now(),
    inserted_at timestamp without time zone not null default now(),
    id uuid not null default gen_random_uuid(),
    binary_payload bytea,
    primary key (id, inserted_at)
) partition by range (inserted_at);

create index if not exists messages_inserted_at_topic_index
    on realtime.messages (inserted_at desc, topic)
    where extension = 'broadcast';

-- As on Supabase: row level security is on. The owner (who ran this migration) and roles with
-- BYPASSRLS insert freely; other roles need an insert policy, exactly as on Supabase.
alter table realtime.messages enable row level security;

create or replace function realtime.topic() returns text
language sql stable
as $$
    select nullif(current_setting('realtime.topic', true), '')::text;
$$;

-- Never aborts the caller's transaction: a failure becomes a WARNING and the message is lost,
-- as on Supabase. The NOTIFY only wakes Switchboard's reader (the row travels by logical
-- decoding); PostgreSQL sends it at commit, once per transaction.
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
    generated_id uuid;
    final_payload jsonb;
begin
    begin
        generated_id := gen_random_uuid();
        final_payload := payload;
        if jsonb_typeof(payload) = 'object' and not (payload ? 'id') then
            final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
        end if;
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
        perform pg_notify('switchboard_messages', '');
    exception
        when others then
            raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
    end;
end;
$$;

create or replace function realtime.broadcast_changes(
    topic_name text, event_name text, operation text, table_name text, table_schema text,
    new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
    row_data jsonb := '{}'::jsonb;
begin
    if level = 'STATEMENT' then
        raise exception 'function can only be triggered for each row, not for each statement';
    end if;
    if operation in ('INSERT', 'UPDATE', 'DELETE') then
        row_data := jsonb_build_object(
            'old_record', old, 'record', new, 'operation', operation,
            'table', table_name, 'schema', table_schema);
        perform realtime.send(row_data, event_name, topic_name);
    else
        raise exception 'Unexpected operation type: %', operation;
    end if;
exception
    when others then
        raise exception 'Failed to process the record: %', sqlerrm;
end;
$$;

create schema if not exists switchboard;

-- Daily partitions of realtime.messages, named messages_YYYY_MM_DD like Supabase's. The server
-- calls this at start and every hour; `switchboard db migrate` calls it too.
create or replace function switchboard.ensure_message_partitions(days_ahead integer default 3)
returns integer
language plpgsql
as $$
declare
    day date;
    created integer := 0;
    name text;
begin
    for day in
        select generate_series(current_date - 1, current_date + days_ahead, interval '1 day')::date
    loop
        name := 'messages_' || to_char(day, 'YYYY_MM_DD');
        if to_regclass('realtime.' || name) is null then
            execute format(
                'create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
                name, day, day + 1);
            created := created + 1;
        end if;
    end loop;
    return created;
end;
$$;

-- Drops the partitions wholly older than the retention (Supabase keeps 72 hours).
create or replace function switchboard.drop_message_partitions(retention interval default interval '72 hours')
returns integer
language plpgsql
as $$
declare
    part record;
    dropped integer := 0;
begin
    for part in
        select c.relname
        from pg_inherits i
        join pg_class c on c.oid = i.inhrelid
        join pg_class p on p.oid = i.inhparent
        join pg_namespace n on n.oid = p.relnamespace
        where n.nspname = 'realtime' and p.relname = 'messages'
          and c.relname ~ '^messages_[0-9]{4}_[0-9]{2}_[0-9]{2}$'
    loop
        if to_date(substr(part.relname, 10), 'YYYY_MM_DD') + 1 <= (now() - retention)::date then
            execute format('drop table realtime.%I', part.relname);
            dropped := dropped + 1;
        end if;
    end loop;
    return dropped;
end;
$$;

select switchboard.ensure_message_partitions(3);
