"""Finding the line of a key in TOML text (tomllib keeps no positions)."""

from __future__ import annotations

import tomllib

from shadowvault.config.locate import KeyLocator

TEXT = """\
# top comment: retry_times = 1
[repository]
path = "/srv/repo"   # trailing comment

[ sets . "web-1" ]
'retry_times' = 3
exclude = [
  "a = b",
  { not = "a key" },
]
note = '''
tags = ["inside a string"]
'''
tags = ["real"]

[sets]
db.retention.keep_daily = 7
pg = { type = "postgresql", sources = ["x"] }

[sets.web-1.retention]
keep_last = 2
"""


def test_locations() -> None:
    tomllib.loads(TEXT)  # the sample is valid TOML
    loc = KeyLocator(TEXT)
    assert loc.line_of("repository") == 2
    assert loc.line_of("repository", "path") == 3
    assert loc.line_of("sets", "web-1") == 5
    assert loc.line_of("sets", "web-1", "retry_times") == 6
    assert loc.line_of("sets", "web-1", "exclude") == 7
    assert loc.line_of("sets", "web-1", "tags") == 14  # not the line inside the multi-line string
    assert loc.line_of("sets", "db", "retention", "keep_daily") == 17
    assert loc.line_of("sets", "db", "retention") == 17
    assert loc.line_of("sets", "pg", "sources") == 18  # inside an inline table
    assert loc.line_of("sets", "web-1", "retention", "keep_last") == 21
    assert loc.line_of("sets", "web-1", "unknown") == 5  # falls back to the enclosing table
    assert loc.line_of("nowhere") is None
    assert loc.line_of("sets", "not") == 16  # "{ not = … }" inside the array is not a key line
