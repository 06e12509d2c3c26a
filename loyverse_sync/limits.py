"""The ranges every input must stay within, named once.

The CLI's parameter types (cli/_common.py) and the database's CHECK constraints use these
numbers; a value outside them is refused at the door with the range in the message, never
stored to break something later (a NaN window that makes the governor never wait, an id that
overflows bigint in a query). Change a bound here and in the matching CHECK together.
"""

from __future__ import annotations

import decimal

#: PostgreSQL's bigint: every id we store (accounts, sync logs, import runs).
BIGINT_MAX = 9_223_372_036_854_775_807
#: integer columns (counts, limits)
INT_MAX = 2_147_483_647
ID_MIN, ID_MAX = 1, BIGINT_MAX

#: loyverse.loyverse_accounts.rate_limit_requests: requests per window (Loyverse documents 300).
RATE_LIMIT_REQUESTS_MIN, RATE_LIMIT_REQUESTS_MAX = 1, 100_000
#: loyverse.loyverse_accounts.rate_limit_window_seconds: the window, finite, one second to one day.
RATE_WINDOW_SECONDS_MIN, RATE_WINDOW_SECONDS_MAX = 1.0, 86_400.0

#: public.products.price: finite, 0 <= price < 1e8, two decimals (CHECK
#: product_price_is_a_number_below_100000000: numeric(12, 2) holds less than 1e10, but what is
#: sent is the price divided by a tax factor, and the mapping records it in numeric(12, 2)).
PRICE_MIN = decimal.Decimal(0)
PRICE_MAX_EXCLUSIVE = decimal.Decimal(100_000_000)
PRICE_DECIMALS = 2

#: Names people give (accounts, restaurants): loyverse.loyverse_accounts' CHECK allows 100 characters.
NAME_MAX = 100

#: Durations the CLI takes (timeouts, refresh periods, snapshot ages): at most a day, except
#: the snapshot age, which may reasonably be a year.
SECONDS_MAX = 86_400.0
MAX_AGE_SECONDS_MAX = 366 * 86_400.0

#: Rows per page or per batch a command asks for.
PAGE_SIZE_MAX = 1_000
PAGE_MAX = 1_000_000
BATCH_SIZE_MAX = 1_000_000
#: Seeds of the emulator's generators (Python's random takes any int; keep them printable).
SEED_MAX = 2**32 - 1

#: How much of a text value a human-readable listing shows before an ellipsis (the data is
#: not changed; --json shows it whole).
DISPLAY_TEXT_MAX = 120
