"""The Fintoc side: the HTTP client, retry, the rate budget, the JSON boundary."""
