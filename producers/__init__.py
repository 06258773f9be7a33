"""The producing side: the API the platform calls, the ``emit`` and ``simulate`` commands."""
