"""Locust scenarios for scoring endpoints (``locust -f loadtests/locustfile.py``)."""
