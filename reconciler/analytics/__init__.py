"""Model analytics: benchmark results, their statistics, history and comparisons.

`results` (the frozen records), `stats` (medians and spread), `activity` (is anybody using
Ollama, from what `/api/ps` shows) and `compare` (tokens/s across quantizations) are pure;
`history` is the SQLite store under the state directory.
"""
