"""What every stage shares: typed params and compose, errors, records and atomic writes, the
response cache, the stage runner, credentials, device selection, retries and rate limits,
call accounting, Korean text and time. Imports nothing from the other seedtune packages."""
