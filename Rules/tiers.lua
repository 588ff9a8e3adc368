-- Tiers: limits per user tier (the JWT `tier` claim; free when absent).
-- Fields a tier leaves unset inherit from the default tier.

tier "free"  { max_channels = 3,  messages_per_minute = 100, max_payload = 64 * 1024 }
tier "paid"  { max_channels = 10 }
tier "scale" { max_channels = 10 }
default_tier "free"

-- Supabase clients send free-form broadcast event names; declared events below still get their
-- field checks, batching and replay policy.
allow_undeclared_events(true)
