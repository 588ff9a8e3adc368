-- Migration 4: tables that relations declared in the rules read from (`relation "name" { sql =
-- …, watch = { "schema.table" } }`) announce their changes, so that the server reads the
-- relation again within a second. The server puts this function's trigger on each watched
-- table when it reads the rules; one notification per statement, carrying the table's name.
-- Idempotent.
create or replace function switchboard.relation_changed() returns trigger
language plpgsql
as $$
begin
    perform pg_notify('switchboard_relations', tg_table_schema || '.' || tg_table_name);
    return null;
end;
$$;
