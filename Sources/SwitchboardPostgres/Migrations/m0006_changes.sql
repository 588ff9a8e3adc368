-- Migration 6: Postgres Changes. Tables enter the change stream the way Supabase users already
-- do it, by joining the supabase_realtime publication (`alter publication supabase_realtime
-- add table …`); this creates the publication when the database has none. The server reads the
-- changes from a logical replication slot (wal2json); to hear of them at once it puts a
-- statement-level trigger calling this function on each table of the publication, which sends
-- the table's name on `switchboard_changes` when a statement that changed it commits (the
-- slot, read once a second anyway, stays the record of what changed). Idempotent.
do $$
begin
    if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
        create publication supabase_realtime;
    end if;
end;
$$;

create or replace function switchboard.changes_wakeup() returns trigger
language plpgsql
as $$
begin
    perform pg_notify('switchboard_changes', tg_table_schema || '.' || tg_table_name);
    return null;
end;
$$;
