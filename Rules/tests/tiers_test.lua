-- Limits per tier (tiers.lua): free is the default; paid and scale inherit the rest from free.

test("free is the default tier", function()
  expect_limits({ sub = "u1", role = "supplier" }, { max_channels = 3, messages_per_minute = 100, max_payload = 64 * 1024 })
  expect_limits({ sub = "u1", role = "supplier", tier = "free" }, { max_channels = 3 })
  expect_limits({ sub = "u1", role = "supplier", tier = "no-such-tier" }, { max_channels = 3 })
end)

test("paid and scale allow 10 channels and inherit the rest", function()
  for _, tier in ipairs({ "paid", "scale" }) do
    expect_limits({ sub = "u1", role = "supplier", tier = tier },
      { max_channels = 10, messages_per_minute = 100, max_payload = 65536 })
  end
end)
