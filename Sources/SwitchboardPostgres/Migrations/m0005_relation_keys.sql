-- Migration 5: a watched table that names the column holding a relation's key
-- (`watch = { "app.supplier_team(supplier_id)" }`) announces which keys a statement changed, so
-- that the server re-reads only those keys' rows instead of the whole relation. The server puts
-- this function's triggers on such a table (one per event: PostgreSQL gives a trigger with
-- transition tables a single event); the column's name is the trigger's argument. A statement
-- that changes no row sends nothing. When the keys would not fit in a notification (its
-- payload is limited to 8,000 bytes), it sends the table's name alone, which means "re-read
-- every relation that watches it", as migration 4's trigger does (kept for TRUNCATE).
-- Idempotent.
create or replace function switchboard.relation_keys_changed() returns trigger
language plpgsql
as $$
declare
    changed text[];
    payload text;
begin
    if tg_op = 'INSERT' then
        execute format('select array_agg(distinct %1$I::text) from switchboard_new where %1$I is not null', tg_argv[0])
            into changed;
    elsif tg_op = 'DELETE' then
        execute format('select array_agg(distinct %1$I::text) from switchboard_old where %1$I is not null', tg_argv[0])
            into changed;
    else
        execute format(
            'select array_agg(distinct k) from (select %1$I::text as k from switchboard_old union all '
                || 'select %1$I::text from switchboard_new) as changed where k is not null', tg_argv[0])
            into changed;
    end if;
    if changed is null then
        return null;
    end if;
    payload := json_build_object('table', tg_table_schema || '.' || tg_table_name, 'keys', changed)::text;
    if octet_length(payload) > 7900 then
        payload := tg_table_schema || '.' || tg_table_name;
    end if;
    perform pg_notify('switchboard_relations', payload);
    return null;
end;
$$;
